import { existsSync, readdirSync } from "node:fs";
import { type ClamavScanner, checkClamdAlerts, createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import {
  createCachedScanner,
  createEicarScanner,
  createMemoryResultStore,
  type Scanner,
  signaturesVersionKey,
} from "@engine/core";
import { createMultiScanner, type MultiScanner } from "@engine/multi";
import { createYaraScanner, type YaraScanner } from "@engine/yara";
import type { Logger } from "pino";
import { type BackendModule, BackendModuleError, loadBackendModule } from "./backend-module.js";
import { backendNames, ConfigError, type EngineConfig, isBackendModuleEntry } from "./config.js";
import type { EngineMetrics } from "./metrics.js";
import { redactUrls } from "./redact.js";
import { createRedisResultStore, type RedisResultStore } from "./redis-result-store.js";
import { policyMismatch } from "./verdict-policy-setting.js";
import { engineVersion } from "./version.js";

/** Whether a backend runs, and why (or why not): the start banner's lines. */
export interface BackendStatus {
  /** The backend's name (a third-party module's scanner name). */
  name: string;
  running: boolean;
  /** Its engine, version and where its signatures come from; or why it does not run. */
  reason: string;
  /** Something the operator must know about its answers (e.g. test signatures only). */
  warning?: string;
}

/** The banner's warning when ClamAV has no official database: it detects test files only. */
export const clamavTestSignaturesWarning =
  "ClamAV detects EICAR and test samples only: install clamav-freshclam or point CLAMD_* at a clamd with official databases";

/** The banner's warning when YARA runs the bundled rules: one EICAR rule. */
export const yaraBundledRulesWarning =
  "YARA has only the bundled EICAR rule: set RULES_DIR to a directory of your rules";

/** The engine's scanner and what it took to build it. */
export interface EngineBackends {
  /** What bounties and /scan use: the multi-engine, behind the result cache when it is on. */
  scanner: Scanner;
  /** The multi-engine itself (no cache). */
  multi: MultiScanner;
  /** Where the result cache lives (`memory`, `redis`), or `off`. */
  cache: "memory" | "redis" | "off";
  /** When YARA's rules were last (re)loaded (epoch ms), when YARA runs. */
  rulesLoadedAt: number | undefined;
  /**
   * Reloads the YARA rules (atomically; a rule file that does not compile keeps every old rule)
   * and, unless `clamav: false`, the managed clamd's databases (relinked, then RELOAD, waiting
   * for clamd to finish). The cache is bypassed meanwhile and keyed on the new versions after:
   * no answer from the old rules is stored under the new ones. Logs each failure and counts
   * it; resolves false when something failed. Reloads run one at a time; requests during one
   * collapse into a single next reload.
   */
  reload(options?: { clamav?: boolean }): Promise<boolean>;
  statuses: BackendStatus[];
  /** Backends, for versions and health. */
  clamav?: ClamavScanner;
  yara?: YaraScanner;
  /** Third-party backends from ENGINE_BACKENDS module entries, in their order. */
  modules: BackendModule[];
  /** Stops the scanners and a managed clamd. */
  dispose(): Promise<void>;
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
  // Every daemon of a pool answers some scans: each is probed.
  const clients = "clients" in scanner.client ? scanner.client.clients : [scanner.client];
  const probes = await Promise.all(
    clients.map((client) => checkClamdAlerts(client, { deadline: Date.now() + 30_000 })),
  );
  // A daemon that cannot be reached now is skipped (a pool keeps working without it); one that
  // answers without the alerts is refused.
  const unreachable = probes.flat().filter((probe) => probe.answer.startsWith("could not scan"));
  if (unreachable.length > 0)
    logger.warn(
      { daemons: unreachable.length / 2 },
      `${where}: some daemons could not be probed for the alert settings now (unreachable)`,
    );
  const failing = probes
    .flat()
    .filter((probe) => !probe.passed && !probe.answer.startsWith("could not scan"));
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

const systemDatabaseDirectory = "/var/lib/clamav";

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
 * Builds the engine's scanners from the settings. With ENGINE_BACKENDS unset, the embedded
 * default: YARA (WebAssembly) with RULES_DIR or the bundled rules, plus ClamAV when CLAMD_*
 * points at a reachable clamd or, failing that, a managed clamd when the binary is installed
 * (with the shipped signatures and the system database when it has one). A backend named in
 * ENGINE_BACKENDS that cannot start is an error; an optional one is reported and left out.
 */
export async function buildBackends(
  config: EngineConfig,
  logger: Logger,
  options: {
    /**
     * Probe a clamd given by CLAMD_* with an encrypted zip and a deep nest, and refuse to start
     * when it answers OK (unless INSECURE_CLAMD_WITHOUT_ALERTS). Default true; `check` reports
     * the probes itself instead.
     */
    verifyClamdAlerts?: boolean;
    /**
     * Put the result cache (CACHE_TTL_SECONDS, CACHE_MAX_BYTES; in Redis with QUEUE_URL) in
     * front of the multi-engine. Default false (`scan` and `check` always scan).
     */
    resultCache?: boolean;
    /** Where cache lookups and reloads are counted. */
    metrics?: EngineMetrics;
  } = {},
): Promise<EngineBackends> {
  options.verifyClamdAlerts ??= true;
  const entries = config.ENGINE_BACKENDS ?? ["yara", "clamav"];
  const wanted = new Set<string>(entries.filter((entry) => !isBackendModuleEntry(entry)));
  const explicit = config.ENGINE_BACKENDS !== undefined;
  const statuses: BackendStatus[] = [];
  const scanners: Scanner[] = [];
  const modules: BackendModule[] = [];
  let managed: ManagedClamd | undefined;
  let clamav: ClamavScanner | undefined;
  let yara: YaraScanner | undefined;
  let rulesLoadedAt: number | undefined;
  const cleanup = async (): Promise<void> => {
    await Promise.allSettled(scanners.map((scanner) => scanner.close?.()));
    await Promise.allSettled(modules.map((module) => module.dispose()));
    await managed?.[Symbol.asyncDispose]();
  };

  try {
    if (wanted.has("eicar")) {
      scanners.push(createEicarScanner());
      statuses.push({ name: "eicar", running: true, reason: "EICAR string detection" });
    }
    if (wanted.has("yara")) {
      yara = createYaraScanner({
        ...(config.RULES_DIR ? { rulesDir: config.RULES_DIR } : {}),
        engine: config.YARA_ENGINE,
        onDiagnostics: (diagnostics) => {
          const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error");
          if (errors.length > 0)
            logger.warn(
              { skipped: errors.length, first: errors[0] },
              "some YARA rule files do not compile and were skipped",
            );
        },
      });
      await yara.setup?.();
      rulesLoadedAt = Date.now();
      scanners.push(yara);
      statuses.push({
        name: "yara",
        running: true,
        reason: `${yara.engine === "native" ? `libyara ${yara.vendorVersion}` : `YARA-X ${yara.vendorVersion} (WebAssembly)`}, ${yara.ruleFileCount} rule file(s) from ${config.RULES_DIR ?? "the bundled rules"}, rules ${yara.signaturesVersion}`,
        ...(config.RULES_DIR ? {} : { warning: yaraBundledRulesWarning }),
      });
    } else {
      statuses.push({ name: "yara", running: false, reason: "not in ENGINE_BACKENDS" });
    }

    if (wanted.has("clamav")) {
      const configured = config.CLAMD_HOSTS
        ? { hosts: config.CLAMD_HOSTS }
        : config.CLAMD_SOCKET
          ? { socket: config.CLAMD_SOCKET }
          : config.CLAMD_HOST || config.CLAMD_PORT
            ? { host: config.CLAMD_HOST ?? "127.0.0.1", port: config.CLAMD_PORT ?? 3310 }
            : undefined;
      let reason: string | undefined;
      if (configured) {
        const where = configured.hosts
          ? `the clamd pool ${configured.hosts.join(",")}`
          : `the clamd at ${configured.socket ?? `${configured.host}:${configured.port}`}`;
        const candidate = createClamavScanner(configured);
        let reachable = true;
        try {
          await candidate.setup?.();
        } catch (error) {
          if (explicit) throw error;
          reachable = false;
          // Configured, so wanted: it stays in and fails closed (unknown, never a benign from the
          // other backends alone) until clamd answers; each scan tries to reach it again.
          scanners.push(candidate);
          clamav = candidate;
          statuses.push({
            name: "clamav",
            running: true,
            reason: `${where} is NOT reachable (${(error as Error).message}): answers are unknown until it is; its alert settings could not be checked`,
          });
        }
        if (reachable) {
          if (options.verifyClamdAlerts) await verifyAlerts(candidate, where, config, logger);
          clamav = candidate;
          reason = where;
        }
      } else if (clamdInstalled()) {
        const withSystem = systemHasDatabases();
        managed = await startManagedClamd({
          tcp: false,
          ...(withSystem ? { databaseDirectories: [systemDatabaseDirectory] } : {}),
        });
        clamav = createClamavScanner({
          ...managed.clientOptions(),
          signaturesVersion: managed.signaturesVersion,
        });
        await clamav.setup?.();
        reason = `managed clamd (shipped signatures${withSystem ? ` + ${systemDatabaseDirectory}` : "; no official database found"})`;
      } else if (explicit) {
        throw new Error(
          "ENGINE_BACKENDS asks for clamav, but CLAMD_HOST/CLAMD_PORT/CLAMD_SOCKET are unset and clamd is not installed (apt-get install clamav-daemon)",
        );
      } else {
        statuses.push({
          name: "clamav",
          running: false,
          reason: "clamd not installed (apt-get install clamav-daemon) and CLAMD_* unset",
        });
      }
      if (clamav && reason) {
        // (Only reachable backends: an unreachable configured clamd has its line above.)
        scanners.push(clamav);
        const version = await clamav.version();
        statuses.push({
          name: "clamav",
          running: true,
          reason: `${reason}, ClamAV ${version.engineVersion}${version.databaseVersion ? `/${version.databaseVersion}` : " (no official database)"}`,
          // clamd's VERSION names a database only when an official one (daily, main) is loaded.
          ...(version.databaseVersion ? {} : { warning: clamavTestSignaturesWarning }),
        });
      }
    } else {
      statuses.push({ name: "clamav", running: false, reason: "not in ENGINE_BACKENDS" });
    }
    const taken = new Set<string>([...backendNames, ...scanners.map((scanner) => scanner.name)]);
    for (const entry of entries.filter(isBackendModuleEntry)) {
      let module: BackendModule;
      try {
        module = await loadBackendModule(entry);
      } catch (error) {
        if (error instanceof BackendModuleError) throw new ConfigError([error.message]);
        throw error;
      }
      modules.push(module);
      if (taken.has(module.name))
        throw new ConfigError([
          `ENGINE_BACKENDS entry ${JSON.stringify(entry)}: its scanner is named ${JSON.stringify(module.name)}, which another backend has; give it its own name`,
        ]);
      taken.add(module.name);
      scanners.push(module.scanner);
      statuses.push({ name: module.name, running: true, reason: `third-party module ${entry}` });
    }
    if (scanners.length === 0) throw new Error("no backend could start; see the reasons above");
    const mismatch = policyMismatch(
      config.VERDICT_POLICY.text,
      scanners.map((each) => each.name),
    );
    if (mismatch) throw new ConfigError([`VERDICT_POLICY: ${mismatch}`]);
  } catch (error) {
    await cleanup();
    throw error;
  }

  const multi = createMultiScanner(scanners, {
    name: "microengine",
    policy: config.VERDICT_POLICY.policy,
    // Answers carry each failure's code and public reason; the details go to the log.
    onBackendError: (backend, error) =>
      logger.warn(
        { backend, code: error.code, error: redactUrls(error.message) },
        "a backend could not scan an artifact",
      ),
  });

  // While signatures are being reloaded the cache is bypassed: clamd answers from its old
  // database until its background reload ends, and those answers must not be stored.
  let reloadingSignatures = false;
  // The managed clamd's database hash in the key is the one clamd confirmed loading: relinking
  // changes the files at once, clamd loads them later (or fails to and keeps the old ones).
  let confirmedDatabaseHash = managed?.signaturesVersion;
  // After a clamd reload that failed or was not confirmed, what clamd runs is not known: the
  // cache stays bypassed until a reload succeeds.
  let databaseUnconfirmed = false;
  let redisStore: RedisResultStore | undefined;
  let cache: EngineBackends["cache"] = "off";
  let scanner: Scanner = multi;
  if (options.resultCache && config.CACHE_TTL_SECONDS > 0) {
    redisStore = config.QUEUE_URL
      ? createRedisResultStore(config.QUEUE_URL, config.QUEUE_NAME, logger, {
          maxBytes: config.CACHE_MAX_BYTES,
        })
      : undefined;
    cache = redisStore ? "redis" : "memory";
    const { metrics } = options;
    scanner = createCachedScanner(multi, {
      store: redisStore ?? createMemoryResultStore({ maxBytes: config.CACHE_MAX_BYTES }),
      ttlMs: config.CACHE_TTL_SECONDS * 1000,
      // Every input of an answer that can change while the engine runs, all deterministic (the
      // same across workers): each backend's rules or database version, the managed clamd's
      // database files, clamd's engine version, and which YARA engine runs.
      versionKey: async () =>
        JSON.stringify([
          signaturesVersionKey(multi),
          confirmedDatabaseHash ?? null,
          // (clamd away: no version, and no conclusive answer to store either)
          clamav
            ? await clamav.version().then(
                (version) => version.engineVersion,
                () => null,
              )
            : null,
          yara?.engine ?? null,
        ]),
      // What changes answers besides the signatures: the engine, its backends and the policy.
      optionsKey: JSON.stringify([
        engineVersion,
        scanners.map((each) => each.name),
        config.VERDICT_POLICY.text,
      ]),
      // Every artifact the engine scans with a sha256 got it from the fetcher, which computed
      // it while downloading (a declared one only serves to check the download).
      trustDeclaredSha256: true,
      paused: () => reloadingSignatures || databaseUnconfirmed,
      // A downloaded artifact's path is a random temporary one: only whether it has one (a
      // large artifact spooled to disk) can change an answer (YARA's `filepath` external).
      artifactKey: (artifact) =>
        JSON.stringify([
          artifact.kind,
          artifact.filename ?? "",
          artifact.mimetype ?? "",
          artifact.path === undefined ? "memory" : "file",
        ]),
      onLookup: (outcome) => {
        if (outcome === "hit") metrics?.cacheHits.inc();
        else if (outcome === "miss") metrics?.cacheMisses.inc();
      },
    });
  }

  /**
   * Watches the managed clamd's log after `offset` (its length before RELOAD; the whole log when
   * it was rotated since) until the reload succeeds or fails, or `limitMs` passes.
   */
  const clamdReloadOutcome = async (
    offset: number,
    limitMs: number,
  ): Promise<"reloaded" | "failed" | "timeout"> => {
    const deadline = Date.now() + limitMs;
    while (Date.now() < deadline) {
      const log = (await managed?.log().catch(() => "")) ?? "";
      const recent = log.length >= offset ? log.slice(offset) : log;
      if (/Database correctly reloaded/.test(recent)) return "reloaded";
      // clamd 1.x: "ERROR: reload_th: Database load failed: ..." then "WARNING: Database
      // reload failed, keeping the previous instance".
      if (/Database (re)?load failed/i.test(recent)) return "failed";
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return "timeout";
  };

  const reloadOnce = async (what: { clamav: boolean }): Promise<boolean> => {
    let ok = true;
    reloadingSignatures = true;
    try {
      if (yara) {
        try {
          // A hot reload is strict: one broken file keeps every old rule (the start skipped them).
          await yara.reload({ onCompileError: "fail" });
          rulesLoadedAt = Date.now();
          options.metrics?.signaturesReloads.inc({ backend: "yara" });
          logger.info(
            { backend: "yara", ruleFiles: yara.ruleFileCount, rules: yara.signaturesVersion },
            "YARA rules reloaded",
          );
        } catch (error) {
          ok = false;
          options.metrics?.rulesReloadFailures.inc({ backend: "yara" });
          logger.error(
            { backend: "yara", err: error, rules: yara.signaturesVersion },
            "YARA rules NOT reloaded: the last good rules stay in use",
          );
        }
      }
      if (clamav && managed && what.clamav) {
        try {
          const offset = (await managed.log()).length;
          // freshclam replaces and renames files in /var/lib/clamav: link what is there now.
          await managed.relinkDatabases();
          databaseUnconfirmed = true;
          await clamav.reload();
          // clamd answers RELOAD at once and loads in the background: wait for the end.
          const outcome = await clamdReloadOutcome(offset, 300_000);
          if (outcome !== "reloaded")
            throw new Error(
              outcome === "failed"
                ? "clamd could not load the databases (see its log); it keeps the old ones, and the result cache stays bypassed until a reload succeeds"
                : "clamd did not finish reloading its databases within 300 s; the result cache stays bypassed until a reload succeeds",
            );
          confirmedDatabaseHash = managed.signaturesVersion;
          databaseUnconfirmed = false;
          options.metrics?.signaturesReloads.inc({ backend: "clamav" });
          logger.info(
            { backend: "clamav", database: clamav.signaturesVersion ?? managed.signaturesVersion },
            "clamd databases reloaded",
          );
        } catch (error) {
          ok = false;
          options.metrics?.rulesReloadFailures.inc({ backend: "clamav" });
          logger.error({ backend: "clamav", err: error }, "clamd databases NOT reloaded");
        }
      }
    } finally {
      reloadingSignatures = false;
    }
    return ok;
  };

  // Reloads run one at a time, and requests that arrive meanwhile collapse into one more.
  let running: Promise<boolean> | undefined;
  let queued: { promise: Promise<boolean>; clamav: boolean } | undefined;
  const reload = (request: { clamav?: boolean } = {}): Promise<boolean> => {
    const wantsClamav = request.clamav ?? true;
    if (!running) {
      running = reloadOnce({ clamav: wantsClamav }).finally(() => {
        running = undefined;
      });
      return running;
    }
    if (queued) {
      queued.clamav ||= wantsClamav;
      return queued.promise;
    }
    const next = { clamav: wantsClamav, promise: Promise.resolve(true) };
    next.promise = running.then(
      () => {
        queued = undefined;
        return reload({ clamav: next.clamav });
      },
      () => {
        queued = undefined;
        return reload({ clamav: next.clamav });
      },
    );
    queued = next;
    return next.promise;
  };

  return {
    scanner,
    multi,
    cache,
    get rulesLoadedAt() {
      return rulesLoadedAt;
    },
    statuses,
    ...(clamav ? { clamav } : {}),
    ...(yara ? { yara } : {}),
    modules,
    reload,
    dispose: async () => {
      // Each step bounded or independent: the managed clamd stops whatever the others do.
      try {
        await multi.close?.();
        await Promise.allSettled(modules.map((module) => module.dispose()));
        await redisStore?.close();
      } finally {
        await managed?.[Symbol.asyncDispose]();
      }
    },
  };
}
