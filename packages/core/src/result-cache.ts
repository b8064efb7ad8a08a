import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { z } from "zod";
import type { Artifact } from "./artifact.js";
import { InvalidOptionsError } from "./errors/invalid-options-error.js";
import { type ScanResult, scanResultSchema } from "./scan-result.js";
import type { Scanner, ScanOptions } from "./scanner.js";

/**
 * Where cached results live: in memory ({@link createMemoryResultStore}) or shared (the engine
 * keeps them in Redis). Implementations may fail: a failed `get` is a miss, a failed `set` is
 * ignored, and a scan never fails because of its cache.
 */
export interface ResultCacheStore {
  /** The stored value of `key`, or `undefined`. */
  get(key: string): Promise<unknown>;
  /** Stores `value` (a JSON-serialisable result) under `key` for `ttlMs` milliseconds. */
  set(key: string, value: unknown, ttlMs: number): Promise<void>;
}

/**
 * An in-memory store (lru-cache), bounded by the JSON size of what it holds: least recently
 * used results are dropped first, and expired ones are never returned.
 * @param options.maxBytes the bound, in bytes of JSON text. Default 64 MiB.
 */
export function createMemoryResultStore(options: { maxBytes?: number } = {}): ResultCacheStore {
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  if (!Number.isInteger(maxBytes) || maxBytes < 1)
    throw new InvalidOptionsError({
      message: `@engine/core: createMemoryResultStore: maxBytes must be a positive integer, got ${maxBytes}`,
    });
  const cache = new LRUCache<string, string>({
    maxSize: maxBytes,
    sizeCalculation: (value, key) => value.length + key.length,
  });
  return {
    get: async (key) => {
      const text = cache.get(key);
      return text === undefined ? undefined : JSON.parse(text);
    },
    set: async (key, value, ttlMs) => {
      const text = JSON.stringify(value);
      // One result larger than the whole cache is not kept (lru-cache would throw).
      if (text.length + key.length <= maxBytes) cache.set(key, text, { ttl: ttlMs });
    },
  };
}

/** What a cache lookup found, for metrics: a `hit`, a `miss` (then scanned), or a `bypass` (not cacheable). */
export type ResultCacheOutcome = "hit" | "miss" | "bypass";

const cachedScannerOptionsSchema = z.object({
  store: z.custom<ResultCacheStore>(
    (value) =>
      typeof (value as ResultCacheStore | null)?.get === "function" &&
      typeof (value as ResultCacheStore | null)?.set === "function",
    "store must have get(key) and set(key, value, ttlMs)",
  ),
  ttlMs: z
    .number()
    .int()
    .positive()
    .max(30 * 24 * 3600 * 1000)
    .default(3_600_000),
  versionKey: z
    .custom<() => string | Promise<string>>((value) => typeof value === "function")
    .optional(),
  optionsKey: z.string().default(""),
  storeTimeoutMs: z.number().int().positive().max(60_000).default(1_000),
  trustDeclaredSha256: z.boolean().default(false),
  onLookup: z
    .custom<(outcome: ResultCacheOutcome) => void>((value) => typeof value === "function")
    .optional(),
  paused: z.custom<() => boolean>((value) => typeof value === "function").optional(),
  artifactKey: z
    .custom<(artifact: Artifact) => string>((value) => typeof value === "function")
    .optional(),
});

/**
 * The default artifact part of the key: what a backend may see of an artifact besides its
 * bytes (YARA's `filename`, `extension`, `filetype` and `filepath` externals).
 */
export function artifactViewKey(artifact: Artifact): string {
  return JSON.stringify([
    artifact.kind,
    artifact.filename ?? "",
    artifact.mimetype ?? "",
    artifact.path ?? "",
  ]);
}

/** What is stored: the result and when. */
const storedEntrySchema = z.object({ result: scanResultSchema, stored_at: z.string() });

/** `operation`, or `undefined` when it fails or takes longer than `ms`: a cache never holds a scan up. */
async function bounded<T>(operation: () => Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      operation().catch(() => undefined),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options of {@link createCachedScanner}. */
export type CachedScannerOptions = z.input<typeof cachedScannerOptionsSchema>;

/**
 * The default version part of the key: the scanner's name and `signaturesVersion`, and each of
 * its backends' (a multi-engine's `backends`). A backend without a `signaturesVersion` is keyed
 * by its name only: pass `versionKey` when it has another way to tell.
 */
export function signaturesVersionKey(scanner: Scanner): string {
  const backends = (scanner as { backends?: readonly Scanner[] }).backends ?? [];
  return [scanner, ...backends]
    .map((each) => `${each.name}@${each.signaturesVersion ?? "-"}`)
    .join(",");
}

/**
 * True when a result may be reused: a verdict other than `unknown`, from backends that all
 * answered and looked inside (no failure, nothing inconclusive).
 */
export function isConclusive(result: ScanResult): boolean {
  if (result.verdict === "unknown") return false;
  return (result.metadata.backends ?? []).every(
    (backend) =>
      backend.error_code === undefined &&
      backend.inconclusive !== true &&
      backend.verdict !== "unknown",
  );
}

async function contentSha256(artifact: Artifact, signal: AbortSignal | undefined): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of artifact.stream(signal ? { signal } : {}))
    hash.update(chunk as Uint8Array);
  return hash.digest("hex");
}

/**
 * Wraps a scanner with a result cache, as Assemblyline keys its results: the SHA-256 of the
 * content, what else a backend sees of the artifact (its kind, filename, MIME type and local
 * path: {@link artifactViewKey}), the
 * scanner's name, its (and its backends') signatures versions, and a key for the options that
 * change answers. An answer is stored only when the version key is the same after the scan as
 * before it (no reload in between), and nothing is looked up or stored while `paused()`. Only conclusive answers are stored ({@link isConclusive}: never
 * `unknown`, a failure or an inconclusive backend), for `ttlMs`. A hit is the stored result with
 * `metadata.cache = { hit: true, stored_at }`; stored values are validated again when read (a
 * shared store is a boundary). Stream artifacts, which can be read once only, are scanned
 * without the cache unless their SHA-256 is trusted (`trustDeclaredSha256`, for callers that
 * computed it themselves). The store never makes a scan fail.
 * @param scanner the scanner to cache (a multi-engine, or one backend)
 * @param options.store where results live, e.g. {@link createMemoryResultStore}
 * @param options.ttlMs how long a result is reused, in ms. Default 3600000 (1 hour)
 * @param options.versionKey the signatures part of the key, read before each scan. Default {@link signaturesVersionKey}
 * @param options.optionsKey the settings that change answers (policy, limits, engine version). Default ""
 * @param options.storeTimeoutMs how long a store's get or set may take before it counts as a miss, in ms. Default 1000
 * @param options.trustDeclaredSha256 use `artifact.sha256` instead of hashing the content. Default false: a declared hash could name another file's answer
 * @param options.onLookup called with each lookup's outcome (metrics)
 * @param options.paused while it returns true, scans bypass the cache (e.g. during a reload)
 * @param options.artifactKey the artifact part of the key. Default {@link artifactViewKey}
 */
export function createCachedScanner(
  scanner: Scanner,
  options: CachedScannerOptions,
): Scanner & { readonly cached: Scanner } {
  const parsed = cachedScannerOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new InvalidOptionsError({
      message: `@engine/core: createCachedScanner: invalid options: ${z.prettifyError(parsed.error)}`,
      cause: parsed.error,
    });
  const settings = parsed.data;
  const versionKey = settings.versionKey ?? (() => signaturesVersionKey(scanner));
  const artifactKey = settings.artifactKey ?? artifactViewKey;

  const scan = async (artifact: Artifact, scanOptions?: ScanOptions): Promise<ScanResult> => {
    const sha256 =
      settings.trustDeclaredSha256 && artifact.sha256
        ? artifact.sha256.toLowerCase()
        : artifact.replayable
          ? await contentSha256(artifact, scanOptions?.signal)
          : undefined;
    if (sha256 === undefined || settings.paused?.()) {
      settings.onLookup?.("bypass");
      return scanner.scan(artifact, scanOptions);
    }
    // What a backend sees besides the content changes answers too (YARA's filename, extension
    // and filetype externals): the same bytes under another name or type are another entry.
    const keyOf = async () =>
      createHash("sha256")
        .update(
          [
            sha256,
            artifactKey(artifact),
            scanner.name,
            await versionKey(),
            settings.optionsKey,
          ].join("\u0000"),
        )
        .digest("hex");
    let key: string;
    try {
      key = await keyOf();
    } catch {
      // No version to key on (a backend that cannot say now): scan without the cache.
      settings.onLookup?.("bypass");
      return scanner.scan(artifact, scanOptions);
    }
    const stored = await bounded(() => settings.store.get(key), settings.storeTimeoutMs);
    const valid = stored === undefined ? undefined : storedEntrySchema.safeParse(stored);
    if (valid?.success && isConclusive(valid.data.result)) {
      settings.onLookup?.("hit");
      const { result, stored_at } = valid.data;
      return { ...result, metadata: { ...result.metadata, cache: { hit: true, stored_at } } };
    }
    settings.onLookup?.("miss");
    const result = await scanner.scan(artifact, scanOptions);
    // Stored only if the signatures did not change during the scan (a reload): an answer
    // from the old rules must not be filed under the new ones. Not awaited: a slow store
    // never delays the answer.
    const keyAfter = await keyOf().catch(() => undefined);
    if (isConclusive(result) && !settings.paused?.() && keyAfter === key) {
      const entry = { result, stored_at: new Date().toISOString() };
      void bounded(() => settings.store.set(key, entry, settings.ttlMs), settings.storeTimeoutMs);
    }
    return result;
  };

  const close = async (): Promise<void> => {
    await scanner.close?.();
  };
  return {
    name: scanner.name,
    scan,
    ...(scanner.setup ? { setup: () => scanner.setup?.() ?? Promise.resolve() } : {}),
    close,
    [Symbol.asyncDispose]: close,
    get signaturesVersion() {
      return scanner.signaturesVersion;
    },
    cached: scanner,
  };
}
