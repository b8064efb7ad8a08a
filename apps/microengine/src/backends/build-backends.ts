import type { Scanner } from "@engine/core";
import type { MultiScanner } from "@engine/multi";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { queueSeal } from "../queue/redis-seal.js";
import type { BackendStatus, EngineBackend } from "./backend-kind.js";
import { createEngineMultiScanner } from "./engine-multi-scanner.js";
import { createResultCache, type ResultCache, withoutResultCache } from "./result-cache.js";
import { releaseBackends, startBackends } from "./running-backends.js";
import { scannerWithCoverage } from "./signature-coverage.js";
import { SignatureReloads } from "./signature-reloads.js";

export type { BackendStatus } from "./backend-kind.js";

/** The engine's scanner and what it took to build it. */
export interface EngineBackends {
  /**
   * What bounties and /scan use: the multi-engine, behind the result cache when it is on; its
   * answers state the engine's coverage (`metadata.coverage`, `signature-coverage.ts`).
   */
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

/** How {@link buildBackends} builds the engine: what `serve`, `worker`, `scan` and `check` differ in. */
export interface BuildBackendsOptions {
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
}

/**
 * Builds the engine's scanners from the settings, one entry of the backend table
 * (`backend-table.ts`) per backend name, then ENGINE_BACKENDS' module entries
 * ({@link startBackends}); then the multi-engine, the result cache and the reloads over them.
 * With ENGINE_BACKENDS unset, the embedded default: YARA with RULES_DIR or the bundled rules,
 * plus ClamAV when CLAMD_* points at a reachable clamd or, failing that, a managed clamd when
 * the binary is installed. A backend named in ENGINE_BACKENDS that cannot start is an error;
 * an optional one is reported and left out.
 */
export async function buildBackends(
  config: EngineConfig,
  logger: Logger,
  options: BuildBackendsOptions = {},
): Promise<EngineBackends> {
  const { running, statuses } = await startBackends(config, logger, options);
  // While signatures are being reloaded the cache is bypassed: clamd answers from its old
  // database until its background reload ends, and those answers must not be stored.
  const reloads = new SignatureReloads(running, logger, options.metrics);
  // (Built after the backends: a failure here still releases them.)
  let multi: MultiScanner;
  let cache: ResultCache;
  try {
    multi = createEngineMultiScanner(running, config.VERDICT_POLICY.policy, logger);
    cache = options.resultCache
      ? await createResultCache(multi, running, config, {
          logger,
          metrics: options.metrics,
          reloading: () => reloads.reloading,
          redisSeal: () => queueSeal(config, options.metrics),
        })
      : withoutResultCache(multi);
  } catch (error) {
    await releaseBackends(running);
    throw error;
  }
  return {
    scanner: scannerWithCoverage(cache.scanner, running),
    multi,
    cache: cache.where,
    running,
    statuses,
    reload: (request) => reloads.reload(request),
    dispose: async () => {
      // Each step bounded or independent: what the backends hold (a managed clamd) is
      // released whatever the others do.
      try {
        await multi.close?.();
        await cache.close();
      } finally {
        await Promise.allSettled(running.map((backend) => backend.release?.()));
      }
    },
  };
}
