import { existsSync, readdirSync } from "node:fs";
import { type ClamavScanner, checkClamdAlerts, createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import type { Logger } from "pino";
import { ConfigError, type EngineConfig } from "../config/config.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { BackendHealth, BackendKind, BackendStatus, EngineBackend } from "./backend-kind.js";

/** The banner's warning when ClamAV has no official database: it detects test files only. */
export const clamavTestSignaturesWarning =
  "ClamAV detects EICAR and test samples only: install clamav-freshclam or point CLAMD_* at a clamd with official databases";

const systemDatabaseDirectory = "/var/lib/clamav";

/** How long the managed clamd may take to reload its databases before the reload counts as failed, in ms. */
const clamdReloadLimitMs = 300_000;

function systemHasDatabases(): boolean {
  try {
    return readdirSync(systemDatabaseDirectory).some((name) => /\.(cvd|cld)$/.test(name));
  } catch {
    return false;
  }
}

function clamdInstalled(): boolean {
  return [
    "/usr/sbin/clamd",
    "/usr/local/sbin/clamd",
    ...(process.env.PATH ?? "").split(":").map((directory) => `${directory}/clamd`),
  ].some((path) => path !== "/clamd" && existsSync(path));
}

/**
 * Probes every daemon the scanner talks to (one, or each of a CLAMD_HOSTS pool: each answers
 * some scans) with an encrypted zip of EICAR and a nest past its limits, within 30 s.
 */
async function probeAlerts(scanner: ClamavScanner) {
  const clients = "clients" in scanner.client ? scanner.client.clients : [scanner.client];
  const probes = await Promise.all(
    clients.map((client) => checkClamdAlerts(client, { deadline: Date.now() + 30_000 })),
  );
  return probes.flat();
}

/**
 * Refuses a clamd that answers OK for what it could not inspect (encrypted archives, nests past
 * its limits): with it, such files would come back benign. INSECURE_CLAMD_WITHOUT_ALERTS turns
 * the refusal into a warning at every start.
 */
async function verifyAlerts(
  scanner: ClamavScanner,
  where: string,
  config: EngineConfig,
  logger: Logger,
): Promise<void> {
  const probes = await probeAlerts(scanner);
  // A daemon that cannot be reached now is skipped (a pool keeps working without it); one that
  // answers without the alerts is refused.
  const unreachable = probes.filter((probe) => probe.answer.startsWith("could not scan"));
  if (unreachable.length > 0)
    logger.warn(
      { daemons: unreachable.length / 2 },
      `${where}: some daemons could not be probed for the alert settings now (unreachable)`,
    );
  const failing = probes.filter(
    (probe) => !probe.passed && !probe.answer.startsWith("could not scan"),
  );
  if (failing.length === 0) return;
  const problems = failing.map(
    (probe) => `${where} answers ${probe.answer} for the ${probe.probe} probe: ${probe.fix}`,
  );
  if (!config.INSECURE_CLAMD_WITHOUT_ALERTS) {
    await scanner.close?.();
    throw new ConfigError([
      ...problems.map((problem) => `CLAMD_*: ${problem}`),
      "INSECURE_CLAMD_WITHOUT_ALERTS=true starts anyway (encrypted or too-deep archives may then be answered benign)",
    ]);
  }
  for (const problem of problems)
    logger.warn(
      `INSECURE (INSECURE_CLAMD_WITHOUT_ALERTS): ${problem}; such files may be answered benign`,
    );
}

/** clamd's readiness: PING, its version, the official database's age against CLAMAV_MAX_DATABASE_AGE_HOURS, connections in use. */
export async function clamdHealth(
  clamav: ClamavScanner,
  maxDatabaseAgeHours: number,
  metrics: EngineMetrics | undefined,
): Promise<BackendHealth> {
  await clamav.client.ping({ deadline: Date.now() + 2_000 });
  const version = await clamav.version();
  const ageSeconds =
    version.databaseDate && Number.isFinite(Date.parse(version.databaseDate))
      ? Math.max(0, Math.round((Date.now() - Date.parse(version.databaseDate)) / 1000))
      : undefined;
  if (ageSeconds !== undefined) metrics?.signaturesAge.set({ backend: clamav.name }, ageSeconds);
  // Only an official database has a date; the shipped test signatures are warned about at start.
  const stale = ageSeconds !== undefined && ageSeconds > maxDatabaseAgeHours * 3600;
  // A clamd of the operator's is re-probed for its alert settings after each new connection.
  const alerts = clamav.alertStatus();
  const failingAlerts = alerts?.state === "failing";
  return {
    ok: !stale && !failingAlerts,
    ...(alerts ? { alerts: alerts.state } : {}),
    engine: version.engineVersion,
    database: version.databaseVersion ?? "custom",
    ...(ageSeconds === undefined
      ? {}
      : {
          databaseDate: version.databaseDate,
          databaseAgeHours: Math.round(ageSeconds / 3600),
          maxDatabaseAgeHours,
        }),
    ...(failingAlerts
      ? {
          problem:
            "clamd answers OK for an encrypted or too-deep archive (restarted without AlertEncrypted*/AlertExceedsMax?): its clean answers are refused until it is fixed and restarted",
        }
      : stale
        ? {
            problem: `the database is older than CLAMAV_MAX_DATABASE_AGE_HOURS (${maxDatabaseAgeHours}): run freshclam`,
          }
        : {}),
    connections: clamav.client.usage,
    // A pool's daemons by position (clamd-1, ...): their addresses stay in the logs.
    ...("hosts" in clamav.client
      ? {
          hosts: clamav.client.hosts().map(({ endpoint: _endpoint, ...state }, index) => ({
            daemon: `clamd-${index + 1}`,
            ...state,
          })),
        }
      : {}),
  };
}

/** `check`'s probes: what clamd cannot look inside must not come back OK (a clamd of yours may lack the settings). */
async function clamdAlertSelfCheck(
  clamav: ClamavScanner,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const probes = await probeAlerts(clamav);
  let passed = true;
  for (const probe of probes) {
    passed &&= probe.passed;
    const what =
      probe.probe === "encrypted-archive"
        ? "a password-protected zip of EICAR"
        : "EICAR nested 40 zips deep";
    out.write(
      probe.passed
        ? `PASS ${clamav.name} reports ${what}: ${probe.answer}\n`
        : `FAIL ${clamav.name} answers ${probe.answer} for ${what}, so such files would pass as clean: ${probe.fix}\n`,
    );
  }
  return passed;
}

/**
 * Watches the managed clamd's log after `offset` (its length before RELOAD; the whole log when
 * it was rotated since) until the reload succeeds or fails, or `limitMs` passes.
 */
async function clamdReloadOutcome(
  managed: ManagedClamd,
  offset: number,
  limitMs: number,
): Promise<"reloaded" | "failed" | "timeout"> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const log = await managed.log().catch(() => "");
    const recent = log.length >= offset ? log.slice(offset) : log;
    if (/Database correctly reloaded/.test(recent)) return "reloaded";
    // clamd 1.x: "ERROR: reload_th: Database load failed: ..." then "WARNING: Database
    // reload failed, keeping the previous instance".
    if (/Database (re)?load failed/i.test(recent)) return "failed";
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return "timeout";
}

/**
 * The running ClamAV backend around `clamav` (and the managed clamd it may own): health,
 * self-check, cache key and, with a managed clamd, reloads of its databases.
 */
function clamavEngineBackend(
  clamav: ClamavScanner,
  status: BackendStatus,
  managed: ManagedClamd | undefined,
  {
    config,
    logger,
    metrics,
  }: { config: EngineConfig; logger: Logger; metrics?: EngineMetrics | undefined },
): EngineBackend {
  const alertsKey =
    managed || clamav.alertStatus() !== undefined ? "alerts-on" : "alerts-not-verified";
  // The managed clamd's database hash in the cache key is the one clamd confirmed loading:
  // relinking changes the files at once, clamd loads them later (or fails to and keeps the old).
  let confirmedDatabaseHash = managed?.signaturesVersion;
  // After a reload that failed or was not confirmed, what clamd runs is not known: its answers
  // are not cached until a reload succeeds.
  let databaseUnconfirmed = false;

  const reload = async (): Promise<boolean> => {
    if (!managed) return true; // a clamd of the operator's reloads on its own (SelfCheck)
    try {
      const offset = (await managed.log()).length;
      // freshclam replaces and renames files in /var/lib/clamav: link what is there now.
      await managed.relinkDatabases();
      databaseUnconfirmed = true;
      await clamav.reload();
      // clamd answers RELOAD at once and loads in the background: wait for the end.
      const outcome = await clamdReloadOutcome(managed, offset, clamdReloadLimitMs);
      if (outcome !== "reloaded")
        throw new Error(
          outcome === "failed"
            ? "clamd could not load the databases (see its log); it keeps the old ones, and the result cache stays bypassed until a reload succeeds"
            : `clamd did not finish reloading its databases within ${clamdReloadLimitMs / 1000} s; the result cache stays bypassed until a reload succeeds`,
        );
      confirmedDatabaseHash = managed.signaturesVersion;
      databaseUnconfirmed = false;
      metrics?.signaturesReloads.inc({ backend: clamav.name });
      logger.info(
        { backend: clamav.name, database: clamav.signaturesVersion ?? managed.signaturesVersion },
        "clamd databases reloaded",
      );
      return true;
    } catch (error) {
      metrics?.rulesReloadFailures.inc({ backend: clamav.name });
      logger.error({ backend: clamav.name, err: error }, "clamd databases NOT reloaded");
      return false;
    }
  };

  return {
    name: clamav.name,
    scanner: clamav,
    status,
    health: () => clamdHealth(clamav, config.CLAMAV_MAX_DATABASE_AGE_HOURS, metrics),
    selfCheck: (out) => clamdAlertSelfCheck(clamav, out),
    // The database clamd confirmed loading and its engine version (clamd away: no version,
    // and no conclusive answer to store either).
    cacheKey: async () => [
      confirmedDatabaseHash ?? null,
      await clamav.version().then(
        (version) => version.engineVersion,
        () => null,
      ),
      // Whether clamd's clean answers come with its alerts (managed: configured; yours:
      // re-verified after each new connection) or not (INSECURE_CLAMD_WITHOUT_ALERTS): workers that
      // differ here never share answers.
      alertsKey,
    ],
    cachePaused: () => databaseUnconfirmed,
    reload,
    release: async () => {
      await managed?.[Symbol.asyncDispose]();
    },
  };
}

/**
 * ClamAV: the clamd CLAMD_HOSTS, CLAMD_SOCKET or CLAMD_HOST/CLAMD_PORT name (refused when it
 * answers OK for what it cannot inspect, unless INSECURE_CLAMD_WITHOUT_ALERTS); failing that,
 * a managed clamd when the binary is installed (the shipped signatures, plus the system
 * database when there is one). A configured clamd that cannot be reached stays in and fails
 * closed (unknown answers) unless ENGINE_BACKENDS names clamav, which makes it an error.
 */
export const clamavBackend: BackendKind = {
  async build(wanted, context) {
    const { config, logger, explicit } = context;
    if (!wanted)
      return { status: { name: "clamav", running: false, reason: "not in ENGINE_BACKENDS" } };
    const configured = config.CLAMD_HOSTS
      ? { hosts: config.CLAMD_HOSTS }
      : config.CLAMD_SOCKET
        ? { socket: config.CLAMD_SOCKET }
        : config.CLAMD_HOST || config.CLAMD_PORT
          ? { host: config.CLAMD_HOST ?? "127.0.0.1", port: config.CLAMD_PORT ?? 3310 }
          : undefined;
    if (configured) {
      const where = configured.hosts
        ? `the clamd pool ${configured.hosts.join(",")}`
        : `the clamd at ${configured.socket ?? `${configured.host}:${configured.port}`}`;
      // Its clean answers stand only while it is verified to raise its alerts since its last
      // new connection (a restart may bring Debian's default clamd.conf), unless waived.
      const clamav = createClamavScanner({
        ...configured,
        verifyAlerts: !config.INSECURE_CLAMD_WITHOUT_ALERTS,
      });
      try {
        await clamav.setup?.();
      } catch (error) {
        if (explicit) throw error;
        // Configured, so wanted: it stays in and fails closed (unknown, never a benign from the
        // other backends alone) until clamd answers; each scan tries to reach it again.
        const status = {
          name: clamav.name,
          running: true,
          reason: `${where} is NOT reachable (${(error as Error).message}): answers are unknown until it is; its alert settings could not be checked`,
        };
        return { backend: clamavEngineBackend(clamav, status, undefined, context) };
      }
      if (context.verifyClamdAlerts) await verifyAlerts(clamav, where, config, logger);
      const status = await banner(clamav, where).catch(async (error: unknown) => {
        await clamav.close?.();
        throw error;
      });
      return { backend: clamavEngineBackend(clamav, status, undefined, context) };
    }
    if (!clamdInstalled()) {
      if (explicit)
        throw new Error(
          "ENGINE_BACKENDS asks for clamav, but CLAMD_HOST/CLAMD_PORT/CLAMD_SOCKET are unset and clamd is not installed (apt-get install clamav-daemon)",
        );
      return {
        status: {
          name: "clamav",
          running: false,
          reason: "clamd not installed (apt-get install clamav-daemon) and CLAMD_* unset",
        },
      };
    }
    const withSystem = systemHasDatabases();
    const managed = await startManagedClamd({
      tcp: false,
      ...(withSystem ? { databaseDirectories: [systemDatabaseDirectory] } : {}),
    });
    let clamav: ClamavScanner | undefined;
    try {
      clamav = createClamavScanner({
        ...managed.clientOptions(),
        signaturesVersion: managed.signaturesVersion,
      });
      await clamav.setup?.();
      const source = `managed clamd (shipped signatures${withSystem ? ` + ${systemDatabaseDirectory}` : "; no official database found"})`;
      const status = await banner(clamav, source);
      return { backend: clamavEngineBackend(clamav, status, managed, context) };
    } catch (error) {
      // The managed clamd stops whatever closing the scanner does.
      await Promise.allSettled([clamav?.close?.()]);
      await managed[Symbol.asyncDispose]();
      throw error;
    }
  },
};

/** A reachable clamd's banner line: where it is, its engine and database versions. */
async function banner(clamav: ClamavScanner, where: string): Promise<BackendStatus> {
  const version = await clamav.version();
  return {
    name: clamav.name,
    running: true,
    reason: `${where}, ClamAV ${version.engineVersion}${version.databaseVersion ? `/${version.databaseVersion}` : " (no official database)"}`,
    // clamd's VERSION names a database only when an official one (daily, main) is loaded.
    ...(version.databaseVersion ? {} : { warning: clamavTestSignaturesWarning }),
  };
}
