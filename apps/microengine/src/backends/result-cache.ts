import {
  type Artifact,
  createCachedScanner,
  createMemoryResultStore,
  type Scanner,
  signaturesVersionKey,
} from "@engine/core";
import type { MultiScanner } from "@engine/multi";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { EngineMetrics } from "../operations/metrics.js";
import { engineVersion } from "../operations/version.js";
import type { RedisSeal } from "../queue/redis-seal.js";
import type { EngineBackend } from "./backend-kind.js";
import { type UnpackSetting, unpackCacheKey } from "./unpacking-backend.js";

/** The settings the result cache reads. */
export type ResultCacheSettings = Pick<
  EngineConfig,
  | "CACHE_TTL_SECONDS"
  | "CACHE_MAX_BYTES"
  | "QUEUE_URL"
  | "QUEUE_NAME"
  | "VERDICT_POLICY"
  | UnpackSetting
>;

/** The multi-engine behind the result cache, or alone. */
export interface ResultCache {
  /** What bounties and /scan use: the multi-engine, behind the cache when it is on. */
  scanner: Scanner;
  /** Where the cache lives (`memory`, `redis`), or `off`. */
  where: "memory" | "redis" | "off";
  /** Closes what the cache holds (its Redis connection); nothing for the others. */
  close(): Promise<void>;
}

/** The multi-engine without a cache (`scan`, `check`, CACHE_TTL_SECONDS=0). */
export function withoutResultCache(multi: MultiScanner): ResultCache {
  return { scanner: multi, where: "off", close: async () => {} };
}

/**
 * What an artifact's answer depends on besides its content: what a backend sees of it. A
 * downloaded artifact's path is a random temporary one: only whether it has one (a large
 * artifact spooled to disk) can change an answer (YARA's `filepath` external).
 */
export function resultCacheArtifactKey(artifact: Artifact): string {
  return JSON.stringify([
    artifact.kind,
    artifact.filename ?? "",
    artifact.mimetype ?? "",
    artifact.path === undefined ? "memory" : "file",
  ]);
}

/**
 * Every input of an answer that can change while the engine runs, all deterministic (the
 * same across workers): each backend's rules or database version, and what each backend adds
 * (the database files a managed clamd confirmed loading, clamd's engine version, which YARA
 * engine runs).
 */
export async function resultCacheVersionKey(
  multi: MultiScanner,
  running: readonly Pick<EngineBackend, "cacheKey">[],
): Promise<string> {
  return JSON.stringify([
    signaturesVersionKey(multi),
    ...(await Promise.all(running.map((backend) => backend.cacheKey?.() ?? null))),
  ]);
}

/**
 * What changes answers besides the signatures: the engine, its backends, the policy, and
 * whether (and how far) they see inside containers (UNPACK, its limits, `@engine/unpack`'s
 * version).
 */
export function resultCacheOptionsKey(
  running: readonly Pick<EngineBackend, "scanner">[],
  settings: Pick<EngineConfig, "VERDICT_POLICY" | UnpackSetting>,
): string {
  return JSON.stringify([
    engineVersion,
    running.map((backend) => backend.scanner.name),
    settings.VERDICT_POLICY.text,
    unpackCacheKey(settings),
  ]);
}

/**
 * Puts the result cache in front of the multi-engine for CACHE_TTL_SECONDS (none when 0): in
 * Redis with QUEUE_URL (shared by every worker and `serve`), else in memory, both bounded by
 * CACHE_MAX_BYTES. Its key holds each backend's signatures and cache key, the engine, the
 * backends, the policy, UNPACK and its limits, and what a backend sees of the artifact; it is bypassed while
 * `reloading()` or a backend's `cachePaused()` says so. Lookups are counted in `metrics`.
 * @param options.redisSeal the seal of the entries in Redis (asked for in queue mode only)
 */
export async function createResultCache(
  multi: MultiScanner,
  running: readonly EngineBackend[],
  settings: ResultCacheSettings,
  options: {
    logger: Logger;
    metrics?: EngineMetrics | undefined;
    reloading: () => boolean;
    redisSeal: () => RedisSeal;
  },
): Promise<ResultCache> {
  if (settings.CACHE_TTL_SECONDS <= 0) return withoutResultCache(multi);
  const { metrics } = options;
  // The Redis client loads in queue mode only (a command that never talks to Redis does not pay
  // for loading it).
  const redisStore = settings.QUEUE_URL
    ? (await import("./redis-result-store.js")).createRedisResultStore(
        settings.QUEUE_URL,
        settings.QUEUE_NAME,
        options.logger,
        { maxBytes: settings.CACHE_MAX_BYTES, seal: options.redisSeal() },
      )
    : undefined;
  try {
    const scanner = createCachedScanner(multi, {
      store: redisStore ?? createMemoryResultStore({ maxBytes: settings.CACHE_MAX_BYTES }),
      ttlMs: settings.CACHE_TTL_SECONDS * 1000,
      versionKey: () => resultCacheVersionKey(multi, running),
      optionsKey: resultCacheOptionsKey(running, settings),
      // Every artifact the engine scans with a sha256 got it from the fetcher, which computed
      // it while downloading (a declared one only serves to check the download).
      trustDeclaredSha256: true,
      paused: () => options.reloading() || running.some((backend) => backend.cachePaused?.()),
      artifactKey: resultCacheArtifactKey,
      onLookup: (outcome) => {
        if (outcome === "hit") metrics?.cacheHits.inc();
        else if (outcome === "miss") metrics?.cacheMisses.inc();
      },
    });
    return {
      scanner,
      where: redisStore ? "redis" : "memory",
      close: async () => {
        await redisStore?.close();
      },
    };
  } catch (error) {
    await redisStore?.close().catch(() => {});
    throw error;
  }
}
