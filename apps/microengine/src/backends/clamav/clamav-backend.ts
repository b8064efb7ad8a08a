import { readdirSync } from "node:fs";
import { type ClamavScanner, createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import type { Logger } from "pino";
import { backendByteLimits } from "../../config/backend-byte-limits.js";
import {
  type BackendBuild,
  type BackendBuildContext,
  type BackendKind,
  type BackendStatus,
  type EngineBackend,
  leftOutStatus,
} from "../backend-kind.js";
import { type UnpackSetting, withUnpacking } from "../unpacking-backend.js";
import {
  type ClamavCoverage,
  type ClamavDatabaseSource,
  clamavCoverage,
  clamavDatabaseWarning,
} from "./clamav-coverage.js";
import { clamdAlertSelfCheck, verifyAlerts } from "./clamd-alerts.js";
import { clamdScansMember } from "./clamd-decodes.js";
import { clamdHealth } from "./clamd-health.js";
import { ManagedClamdReloads } from "./clamd-reload.js";
import { programInstalled } from "./installed-programs.js";

export { clamavTestSignaturesWarning } from "./clamav-coverage.js";
export { clamdHealth } from "./clamd-health.js";

/** What building ClamAV is given: the settings it reads. */
type ClamavBuildContext = BackendBuildContext<
  | "CLAMD_HOSTS"
  | "CLAMD_SOCKET"
  | "CLAMD_HOST"
  | "CLAMD_PORT"
  | "INSECURE_CLAMD_WITHOUT_ALERTS"
  | "CLAMAV_MAX_DATABASE_AGE_HOURS"
  | UnpackSetting
>;

const systemDatabaseDirectory = "/var/lib/clamav";

/** The database files in the system directory; undefined when it cannot be read (or is not there). */
function systemDatabaseFiles(): string[] | undefined {
  try {
    return readdirSync(systemDatabaseDirectory).filter((name) => /\.(cvd|cld)$/.test(name));
  } catch {
    return undefined;
  }
}

function clamdInstalled(): boolean {
  return programInstalled("clamd", ["/usr/sbin/clamd", "/usr/local/sbin/clamd"]);
}

/** The clamd CLAMD_HOSTS, CLAMD_SOCKET or CLAMD_HOST/CLAMD_PORT name, if any. */
function configuredClamd(config: ClamavBuildContext["config"]) {
  return config.CLAMD_HOSTS
    ? { hosts: config.CLAMD_HOSTS }
    : config.CLAMD_SOCKET
      ? { socket: config.CLAMD_SOCKET }
      : config.CLAMD_HOST || config.CLAMD_PORT
        ? { host: config.CLAMD_HOST ?? "127.0.0.1", port: config.CLAMD_PORT ?? 3310 }
        : undefined;
}

/**
 * ClamAV: the clamd CLAMD_HOSTS, CLAMD_SOCKET or CLAMD_HOST/CLAMD_PORT name (refused when it
 * answers OK for what it cannot inspect, unless INSECURE_CLAMD_WITHOUT_ALERTS); failing that,
 * a managed clamd when the binary is installed (the shipped signatures, plus the system
 * database when there is one). A configured clamd that cannot be reached stays in and fails
 * closed (unknown answers) unless ENGINE_BACKENDS names clamav, which makes it an error.
 */
export const clamavBackend: BackendKind = {
  async build(wanted, context: ClamavBuildContext) {
    if (!wanted) return { status: leftOutStatus("clamav") };
    const configured = configuredClamd(context.config);
    if (configured) return buildConfiguredClamav(configured, context);
    if (!clamdInstalled()) {
      if (context.explicit)
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
    return buildManagedClamav(context);
  },
};

/** ClamAV on the operator's clamd (or pool), verified to raise its alerts unless waived. */
async function buildConfiguredClamav(
  configured: NonNullable<ReturnType<typeof configuredClamd>>,
  context: ClamavBuildContext,
): Promise<BackendBuild> {
  const { config, logger } = context;
  const where = configured.hosts
    ? `the clamd pool ${configured.hosts.join(",")}`
    : `the clamd at ${configured.socket ?? `${configured.host}:${configured.port}`}`;
  // Its clean answers stand only while it is verified to raise its alerts since its last
  // new connection (a restart may bring Debian's default clamd.conf), unless waived.
  const clamav = createClamavScanner({
    ...configured,
    verifyAlerts: !config.INSECURE_CLAMD_WITHOUT_ALERTS,
    // Its StreamMaxLength is the operator's: past it, clamd refuses (unknown, too large).
    maxStreamBytes: backendByteLimits(config).clamdMaxStreamBytes,
  });
  try {
    await clamav.setup?.();
  } catch (error) {
    if (context.explicit) throw error;
    // Configured, so wanted: it stays in and fails closed (unknown, never a benign from the
    // other backends alone) until clamd answers; each scan tries to reach it again.
    const status = {
      name: clamav.name,
      running: true,
      reason: `${where} is NOT reachable (${(error as Error).message}): answers are unknown until it is; its alert settings could not be checked`,
    };
    const coverage = await clamavCoverage(clamav, undefined);
    return { backend: clamavEngineBackend(clamav, status, undefined, context, coverage) };
  }
  if (context.verifyClamdAlerts) await verifyAlerts(clamav, where, config, logger);
  const status = await banner(clamav, where, { configured: where }, context).catch(
    async (error: unknown) => {
      await clamav.close?.();
      throw error;
    },
  );
  const coverage = await clamavCoverage(clamav, undefined);
  return { backend: clamavEngineBackend(clamav, status, undefined, context, coverage) };
}

/**
 * What starting the managed clamd cleaned up: the directories (and clamd) of engines that died
 * without stopping theirs, and those it had to leave.
 */
function logStaleSweep(sweep: ManagedClamd["staleSweep"], logger: Logger): void {
  for (const { directory, ownerPid, killedClamdPid } of sweep.removed)
    logger.info(
      { directory, ownerPid, killedClamdPid },
      `removed the managed clamd directory of an engine that is gone (pid ${ownerPid})${killedClamdPid === undefined ? "" : `, and stopped its clamd (pid ${killedClamdPid})`}`,
    );
  for (const { directory, reason } of sweep.left)
    logger.warn({ directory }, `left a managed clamd directory in place: ${reason}`);
}

/** ClamAV on a clamd the engine starts: the shipped signatures, plus the system database when there is one. */
async function buildManagedClamav(context: ClamavBuildContext): Promise<BackendBuild> {
  const systemFiles = systemDatabaseFiles();
  const withSystem = (systemFiles?.length ?? 0) > 0;
  const limits = backendByteLimits(context.config);
  const managed = await startManagedClamd({
    tcp: false,
    // Linked even while empty: a reload (SIGHUP) after freshclam's first download finds it.
    ...(systemFiles ? { databaseDirectories: [systemDatabaseDirectory] } : {}),
    // MaxFileSize, MaxScanSize, StreamMaxLength: at least ARTIFACT_MAX_BYTES.
    config: limits.clamdConfig,
  });
  logStaleSweep(managed.staleSweep, context.logger);
  let clamav: ClamavScanner | undefined;
  try {
    clamav = createClamavScanner({
      ...managed.clientOptions(),
      signaturesVersion: managed.signaturesVersion,
      maxStreamBytes: limits.clamdMaxStreamBytes,
    });
    await clamav.setup?.();
    const source = `managed clamd (shipped signatures${withSystem ? ` + ${systemDatabaseDirectory}` : "; no official database found"})`;
    const databases = {
      managed: {
        databaseDirectory: managed.databaseDirectory,
        systemDirectory: systemDatabaseDirectory,
      },
    };
    const status = await banner(clamav, source, databases, context);
    const coverage = await clamavCoverage(clamav, managed.databaseDirectory);
    return { backend: clamavEngineBackend(clamav, status, managed, context, coverage) };
  } catch (error) {
    // The managed clamd stops whatever closing the scanner does.
    await Promise.allSettled([clamav?.close?.()]);
    await managed[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * The running ClamAV backend around `clamav` (and the managed clamd it may own): health,
 * self-check, cache key and, with a managed clamd, reloads of its databases. With UNPACK,
 * clamd still scans the artifact as it is, and is given besides only the members it cannot
 * decode itself (clamd-decodes.ts); health and the alert probes talk to clamd directly.
 */
function clamavEngineBackend(
  clamav: ClamavScanner,
  status: BackendStatus,
  managed: ManagedClamd | undefined,
  { config, logger, metrics }: ClamavBuildContext,
  coverage: ClamavCoverage,
): EngineBackend {
  const alertsKey =
    managed || clamav.alertStatus() !== undefined ? "alerts-on" : "alerts-not-verified";
  const reloads = managed ? new ManagedClamdReloads(clamav, managed, logger, metrics) : undefined;
  const backend: EngineBackend = {
    name: clamav.name,
    scanner: clamav,
    status,
    health: async () => ({
      ...(await clamdHealth(clamav, config.CLAMAV_MAX_DATABASE_AGE_HOURS, metrics)),
      coverage: await coverage.refresh(),
    }),
    coverage: () => coverage.current(),
    selfCheck: (out) => clamdAlertSelfCheck(clamav, out),
    // The database clamd confirmed loading and its engine version (clamd away: no version,
    // and no conclusive answer to store either).
    cacheKey: async () => [
      reloads?.confirmedDatabaseHash ?? null,
      await clamav.version().then(
        (version) => version.engineVersion,
        () => null,
      ),
      // Whether clamd's clean answers come with its alerts (managed: configured; yours:
      // re-verified after each new connection) or not (INSECURE_CLAMD_WITHOUT_ALERTS): workers that
      // differ here never share answers.
      alertsKey,
    ],
    cachePaused: () => reloads?.databaseUnconfirmed ?? false,
    // A clamd of the operator's reloads on its own (SelfCheck).
    reload: async () => {
      const reloaded = reloads ? await reloads.reload() : true;
      await coverage.refresh();
      return reloaded;
    },
    release: async () => {
      await managed?.[Symbol.asyncDispose]();
    },
  };
  return withUnpacking(backend, config, clamdScansMember);
}

/**
 * A reachable clamd's banner line: where it is, its engine and database versions, and a
 * warning naming why its database is missing or stale ({@link clamavDatabaseWarning}).
 */
async function banner(
  clamav: ClamavScanner,
  where: string,
  databases: ClamavDatabaseSource,
  { config }: ClamavBuildContext,
): Promise<BackendStatus> {
  const version = await clamav.version();
  const warning = clamavDatabaseWarning(version, databases, config.CLAMAV_MAX_DATABASE_AGE_HOURS);
  return {
    name: clamav.name,
    running: true,
    reason: `${where}, ClamAV ${version.engineVersion}${version.databaseVersion ? `/${version.databaseVersion}` : " (no official database)"}`,
    ...(warning ? { warning } : {}),
  };
}
