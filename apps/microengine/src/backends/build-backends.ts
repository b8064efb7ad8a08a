import {
  createCachedScanner,
  createMemoryResultStore,
  type Scanner,
  signaturesVersionKey,
} from "@engine/core";
import { createMultiScanner, type MultiScanner } from "@engine/multi";
import type { Logger } from "pino";
import {
  backendNames,
  ConfigError,
  type EngineConfig,
  isBackendModuleEntry,
} from "../config/config.js";
import { policyMismatch } from "../config/verdict-policy-setting.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { redactUrls } from "../operations/redact.js";
import { engineVersion } from "../operations/version.js";
import { queueSeal } from "../queue/redis-seal.js";
import type { BackendBuildContext, BackendStatus, EngineBackend } from "./backend-kind.js";
import { backendTable } from "./backend-table.js";
import { buildModuleBackend } from "./module-backend.js";
import { createRedisResultStore, type RedisResultStore } from "./redis-result-store.js";

export type { BackendStatus } from "./backend-kind.js";

/** The engine's scanner and what it took to build it. */
export interface EngineBackends {
  /** What bounties and /scan use: the multi-engine, behind the result cache when it is on. */
  scanner: Scanner;
  /** The multi-engine itself (no cache). */
  multi: MultiScanner;
  /** Where the result cache lives (`memory`, `redis`), or `off`. */
  cache: "memory" | "redis" | "off";
  /**
   * The running backends, in the multi-engine's order: the table `/readyz`, `check`, the cache
   * key and reloads read.
   */
  running: readonly EngineBackend[];
  /** The start banner's lines: the running backends' and why the others do not run. */
  statuses: BackendStatus[];
  /**
   * Reloads every backend's signatures (YARA atomically: a rule file that does not compile
   * keeps every old rule; the managed clamd's databases relinked, then RELOAD, waiting for
   * clamd to finish); with `rulesDirectoryOnly`, only those that read RULES_DIR (RULES_WATCH).
   * The cache is bypassed meanwhile and keyed on the new versions after: no answer from the
   * old signatures is stored under the new ones. Each backend logs and counts its failure;
   * resolves false when one failed. Reloads run one at a time; requests during one collapse
   * into a single next reload.
   */
  reload(options?: { rulesDirectoryOnly?: boolean }): Promise<boolean>;
  /** Stops the scanners and whatever the backends hold (a managed clamd). */
  dispose(): Promise<void>;
}

/**
 * Builds the engine's scanners from the settings, one entry of {@link backendTable} per
 * backend name, then ENGINE_BACKENDS' module entries. With ENGINE_BACKENDS unset, the embedded
 * default: YARA with RULES_DIR or the bundled rules, plus ClamAV when CLAMD_* points at a
 * reachable clamd or, failing that, a managed clamd when the binary is installed. A backend
 * named in ENGINE_BACKENDS that cannot start is an error; an optional one is reported and left
 * out.
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
    /** Where cache lookups, reloads and signature ages are counted. */
    metrics?: EngineMetrics;
  } = {},
): Promise<EngineBackends> {
  const entries = config.ENGINE_BACKENDS ?? ["yara", "clamav"];
  const wanted = new Set<string>(entries.filter((entry) => !isBackendModuleEntry(entry)));
  const context: BackendBuildContext = {
    config,
    logger,
    explicit: config.ENGINE_BACKENDS !== undefined,
    verifyClamdAlerts: options.verifyClamdAlerts ?? true,
    metrics: options.metrics,
  };
  const statuses: BackendStatus[] = [];
  const running: EngineBackend[] = [];
  /** On a failed start: closes the scanners and releases what the backends hold. */
  const releaseAll = async (): Promise<void> => {
    await Promise.allSettled(running.map((backend) => backend.scanner.close?.()));
    await Promise.allSettled(running.map((backend) => backend.release?.()));
  };
  const add = (backend: EngineBackend): void => {
    running.push(backend);
    statuses.push(backend.status);
  };

  try {
    for (const [name, kind] of Object.entries(backendTable)) {
      const { backend, status } = await kind.build(wanted.has(name), context);
      if (backend) add(backend);
      else if (status) statuses.push(status);
    }
    const taken = new Set<string>([...backendNames, ...running.map((backend) => backend.name)]);
    for (const entry of entries.filter(isBackendModuleEntry)) {
      const backend = await buildModuleBackend(entry, taken);
      taken.add(backend.name);
      add(backend);
    }
    if (running.length === 0) throw new Error("no backend could start; see the reasons above");
    const mismatch = policyMismatch(
      config.VERDICT_POLICY.text,
      running.map((backend) => backend.name),
    );
    if (mismatch) throw new ConfigError([`VERDICT_POLICY: ${mismatch}`]);
  } catch (error) {
    await releaseAll();
    throw error;
  }

  // (Built after the backends: a failure here still releases them.)
  let multi: MultiScanner;
  // While signatures are being reloaded the cache is bypassed: clamd answers from its old
  // database until its background reload ends, and those answers must not be stored.
  let reloadingSignatures = false;
  let redisStore: RedisResultStore | undefined;
  let cache: EngineBackends["cache"] = "off";
  let scanner: Scanner;
  try {
    const scanners = running.map((backend) => backend.scanner);
    multi = createMultiScanner(scanners, {
      name: "microengine",
      policy: config.VERDICT_POLICY.policy,
      // Answers carry each failure's code and public reason; the details go to the log.
      onBackendError: (backend, error) =>
        logger.warn(
          { backend, code: error.code, error: redactUrls(error.message) },
          "a backend could not scan an artifact",
        ),
    });

    scanner = multi;
    if (options.resultCache && config.CACHE_TTL_SECONDS > 0) {
      redisStore = config.QUEUE_URL
        ? createRedisResultStore(config.QUEUE_URL, config.QUEUE_NAME, logger, {
            maxBytes: config.CACHE_MAX_BYTES,
            seal: queueSeal(config, options.metrics),
          })
        : undefined;
      cache = redisStore ? "redis" : "memory";
      const { metrics } = options;
      scanner = createCachedScanner(multi, {
        store: redisStore ?? createMemoryResultStore({ maxBytes: config.CACHE_MAX_BYTES }),
        ttlMs: config.CACHE_TTL_SECONDS * 1000,
        // Every input of an answer that can change while the engine runs, all deterministic (the
        // same across workers): each backend's rules or database version, and what each backend
        // adds (the database files a managed clamd confirmed loading, clamd's engine version,
        // which YARA engine runs).
        versionKey: async () =>
          JSON.stringify([
            signaturesVersionKey(multi),
            ...(await Promise.all(running.map((backend) => backend.cacheKey?.() ?? null))),
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
        paused: () => reloadingSignatures || running.some((backend) => backend.cachePaused?.()),
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
  } catch (error) {
    await redisStore?.close().catch(() => {});
    await releaseAll();
    throw error;
  }

  const reloadOnce = async (what: { rulesDirectoryOnly: boolean }): Promise<boolean> => {
    let ok = true;
    reloadingSignatures = true;
    try {
      // One after the other: a reload is heavy (YARA compiles, clamd loads its databases).
      for (const backend of running) {
        if (!backend.reload || (what.rulesDirectoryOnly && !backend.readsRulesDirectory)) continue;
        try {
          ok = (await backend.reload()) && ok;
        } catch (error) {
          // A backend's reload logs and counts its own failures; one that throws anyway must
          // not keep the others from reloading.
          ok = false;
          options.metrics?.rulesReloadFailures.inc({ backend: backend.name });
          logger.error({ backend: backend.name, err: error }, "signatures NOT reloaded");
        }
      }
    } finally {
      reloadingSignatures = false;
    }
    return ok;
  };

  // Reloads run one at a time, and requests that arrive meanwhile collapse into one more.
  let current: Promise<boolean> | undefined;
  let queued: { promise: Promise<boolean>; rulesDirectoryOnly: boolean } | undefined;
  const reload = (request: { rulesDirectoryOnly?: boolean } = {}): Promise<boolean> => {
    const rulesDirectoryOnly = request.rulesDirectoryOnly ?? false;
    if (!current) {
      current = reloadOnce({ rulesDirectoryOnly }).finally(() => {
        current = undefined;
      });
      return current;
    }
    // Said, so that an operator whose SIGHUP waits behind a long reload knows why.
    logger.info(
      { queued: queued !== undefined },
      "a reload is already running: this request is served by the next one, when it ends",
    );
    if (queued) {
      queued.rulesDirectoryOnly &&= rulesDirectoryOnly;
      return queued.promise;
    }
    const next = { rulesDirectoryOnly, promise: Promise.resolve(true) };
    const again = (): Promise<boolean> => {
      queued = undefined;
      return reload({ rulesDirectoryOnly: next.rulesDirectoryOnly });
    };
    next.promise = current.then(again, again);
    queued = next;
    return next.promise;
  };

  return {
    scanner,
    multi,
    cache,
    running,
    statuses,
    reload,
    dispose: async () => {
      // Each step bounded or independent: what the backends hold (a managed clamd) is
      // released whatever the others do.
      try {
        await multi.close?.();
        await redisStore?.close();
      } finally {
        await Promise.allSettled(running.map((backend) => backend.release?.()));
      }
    },
  };
}
