import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import {
  type Artifact,
  ArtifactUnavailableError,
  BackendUnavailableError,
  EngineError,
  errorFromSignal,
  OverloadedError,
} from "@engine/core";
import type {
  CompiledWasm,
  ExternalValue,
  RawMatch,
  WorkerRequest,
  WorkerResponse,
  WorkerRuleSource,
} from "./yara-worker-protocol.js";

/** Bytes per message when an artifact is sent to a worker: small enough not to stall the event loop. */
const transferChunkBytes = 4 * 1024 * 1024;

/** The worker script: next to this module in `dist/`; tests running from `src/` use the build. */
const workerUrl = new URL(
  import.meta.url.endsWith(".ts") ? "../dist/yara-worker.js" : "./yara-worker.js",
  import.meta.url,
);

type CompileReply = Extract<WorkerResponse, { type: "compiled" }>;

interface Job {
  id: number;
  artifact: Artifact;
  externals: Record<string, ExternalValue>;
  maxBytes: number;
  signal: AbortSignal;
  resolve: (matches: RawMatch[]) => void;
  reject: (error: unknown) => void;
}

interface Slot {
  worker: Worker;
  job: Job | undefined;
  /** Scans it ran (see {@link PoolOptions.recycleAfterScans}). */
  scans: number;
  /** A replacement is being started for it. */
  retiring: boolean;
  /** Its replacement is running: it goes once its scan ends. */
  replaced: boolean;
  /** After a successor failed to start: no other is tried before this time (ms since epoch). */
  retryAfter: number;
}

/**
 * Scans a worker runs at most before a fresh one replaces it. YARA-X's WebAssembly build
 * (1.20.0) traps (`unreachable`, then `memory access out of bounds` at every scan) after some
 * thousands of scans in one instance, whatever was scanned (6,347 to 12,986, measured): a
 * long-running scanner lost YARA for good. A worker says when its instance wears out (see
 * yara-worker.ts), after ~2,000-3,000 scans; this bound holds where it cannot tell.
 */
export const defaultRecycleAfterScans = 4096;

/** Limits and hooks of a {@link YaraWorkerPool}. */
export interface PoolOptions {
  /** Scans waiting for a worker before new ones are refused (`BackendUnavailableError`). */
  maxQueuedScans: number;
  /** Starts one worker thread (tests stage failures with it). Default: the YARA worker script. */
  spawnWorker?: (rules: PoolRules) => Worker;
  /** First delay before a failed worker start is retried, in ms; doubles up to 5 s. Default 100. */
  retryDelayMs?: number;
  /** Scans a worker runs before it is replaced. Default {@link defaultRecycleAfterScans}. */
  recycleAfterScans?: number;
}

/** What a pool is doing: for readiness checks and saturation metrics. */
export interface PoolStatus {
  /** Workers ready to scan (busy or idle). */
  workers: number;
  /** Workers the pool keeps running. */
  size: number;
  /** Workers scanning now. */
  busy: number;
  /** Scans waiting for a worker. */
  queued: number;
  /** The most scans that may wait. */
  maxQueued: number;
  /** Why the last worker start failed, while replacements keep failing. */
  lastFailure?: string;
}

const maximumRetryDelayMs = 5_000;

/** What the pool needs to (re)start a worker: the compiled module, the sources that compile, the externals. */
export interface PoolRules {
  module: CompiledWasm;
  sources: WorkerRuleSource[];
  externals: Record<string, ExternalValue>;
}

function spawnYaraWorker(rules: PoolRules): Worker {
  const worker = new Worker(workerUrl, { workerData: { module: rules.module } });
  worker.unref();
  return worker;
}

function once<T extends WorkerResponse["type"]>(
  worker: Worker,
  type: T,
): Promise<Extract<WorkerResponse, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: WorkerResponse): void => {
      if (message.type === type) {
        cleanup();
        resolve(message as Extract<WorkerResponse, { type: T }>);
      } else if (message.type === "compile-failed") {
        cleanup();
        reject(new Error(message.message));
      }
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new Error(`the YARA worker exited with code ${code}`));
    };
    const cleanup = (): void => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
  });
}

/**
 * Compiles `sources` in a fresh worker, each file alone first so that broken files are
 * reported and skipped (a failed `addSource` poisons a YARA-X compiler). Resolves with the
 * worker (holding the compiled rules) and the report.
 */
export async function compileInWorker(
  module: CompiledWasm,
  sources: WorkerRuleSource[],
  externals: Record<string, ExternalValue>,
): Promise<{ worker: Worker; report: CompileReply }> {
  const worker = spawnYaraWorker({ module, sources, externals });
  try {
    const compiled = once(worker, "compiled");
    worker.postMessage({
      type: "compile",
      sources,
      externals,
      validate: true,
    } satisfies WorkerRequest);
    return { worker, report: await compiled };
  } catch (error) {
    await worker.terminate();
    throw error;
  }
}

/**
 * A fixed-size pool of YARA worker threads that share nothing but the compiled WebAssembly
 * module. Scans queue FIFO, at most `maxQueuedScans` of them; an abort or deadline terminates
 * the worker running that scan (the only way to stop a WebAssembly scan). A worker that stops
 * is replaced, and a replacement that fails is retried with backoff for as long as the pool is
 * open, so the pool heals; while it has no worker at all, scans fail at once with
 * `BackendUnavailableError` instead of waiting for their deadline.
 */
export class YaraWorkerPool {
  readonly #rules: PoolRules;
  readonly #slots: Slot[] = [];
  readonly #queue: Job[] = [];
  readonly #size: number;
  readonly #options: PoolOptions;
  #starting = 0;
  #failures = 0;
  #lastFailure: Error | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #nextId = 1;
  #closed = false;

  /** @param first a worker that already holds the compiled rules (from {@link compileInWorker}) */
  private constructor(rules: PoolRules, first: Worker, size: number, options: PoolOptions) {
    this.#rules = rules;
    this.#size = size;
    this.#options = options;
    this.#adopt(first);
  }

  /** Starts `size` workers; the first is given, the others compile the accepted sources in parallel. */
  static async start(
    rules: PoolRules,
    first: Worker,
    size: number,
    options: PoolOptions,
  ): Promise<YaraWorkerPool> {
    const pool = new YaraWorkerPool(rules, first, size, options);
    // Counted as starting, so that a worker dying meanwhile is not replaced twice.
    pool.#starting += size - 1;
    const started = await Promise.allSettled(
      Array.from({ length: size - 1 }, () =>
        pool.#startWorker().finally(() => {
          pool.#starting -= 1;
        }),
      ),
    );
    const failure = started.find((outcome) => outcome.status === "rejected");
    if (failure) {
      await pool.close(); // no orphan workers
      throw failure.reason;
    }
    return pool;
  }

  /** Workers, busy or idle. */
  get workers(): number {
    return this.#slots.length;
  }

  /** Workers, queue and the last start failure, for readiness and saturation. */
  status(): PoolStatus {
    return {
      workers: this.#slots.length,
      size: this.#size,
      busy: this.#slots.filter((slot) => slot.job !== undefined).length,
      queued: this.#queue.length,
      maxQueued: this.#options.maxQueuedScans,
      ...(this.#lastFailure ? { lastFailure: this.#lastFailure.message } : {}),
    };
  }

  /** Scans an artifact; rejects with the signal's typed reason when it fires. */
  scan(
    artifact: Artifact,
    externals: Record<string, ExternalValue>,
    maxBytes: number,
    signal: AbortSignal,
  ): Promise<RawMatch[]> {
    if (this.#closed) {
      return Promise.reject(
        new BackendUnavailableError({
          message: "@engine/yara: the scanner's worker pool is closed",
        }),
      );
    }
    if (signal.aborted) return Promise.reject(errorFromSignal(signal));
    if (this.#slots.length === 0 && this.#lastFailure) return Promise.reject(this.#noWorker());
    if (this.#queue.length >= this.#options.maxQueuedScans) {
      return Promise.reject(
        new OverloadedError({
          message: `@engine/yara: ${this.#queue.length} scans are already waiting for a YARA worker (maxQueuedScans)`,
          hint: "The scanner is saturated: retry later, add workers, or raise maxQueuedScans.",
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const job: Job = {
        id: this.#nextId++,
        artifact,
        externals,
        maxBytes,
        signal,
        resolve,
        reject,
      };
      const onAbort = (): void => this.#abort(job);
      signal.addEventListener("abort", onAbort, { once: true });
      const settle =
        <T>(finish: (value: T) => void) =>
        (value: T): void => {
          signal.removeEventListener("abort", onAbort);
          finish(value);
        };
      job.resolve = settle(resolve);
      job.reject = settle(reject);
      this.#queue.push(job);
      this.#dispatch();
    });
  }

  /** Terminates every worker; queued and running scans reject. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    const error = new BackendUnavailableError({
      message: "@engine/yara: the scanner was closed during the scan",
    });
    for (const job of this.#queue.splice(0)) job.reject(error);
    await Promise.all(
      this.#slots.splice(0).map((slot) => {
        slot.job?.reject(error);
        return slot.worker.terminate();
      }),
    );
  }

  async #startWorker(): Promise<void> {
    const worker = (this.#options.spawnWorker ?? spawnYaraWorker)(this.#rules);
    try {
      const compiled = once(worker, "compiled");
      worker.postMessage({
        type: "compile",
        sources: this.#rules.sources,
        externals: this.#rules.externals,
        validate: false,
      } satisfies WorkerRequest);
      await compiled;
    } catch (error) {
      await worker.terminate().catch(() => {});
      throw error;
    }
    if (this.#closed) {
      await worker.terminate();
      return;
    }
    this.#adopt(worker);
  }

  /**
   * Starts workers until the pool is whole again. A failed start is retried after a delay that
   * doubles up to 5 s, for as long as the pool is open: the pool never stays short of workers.
   */
  #replenish(): void {
    if (this.#closed || this.#retryTimer) return;
    while (this.#slots.length + this.#starting < this.#size) {
      this.#startCounted().then(
        () => {},
        () => {
          if (this.#slots.length === 0) {
            // Nothing can run the queued scans now: fail them instead of letting them time out.
            const failure = this.#noWorker();
            for (const job of this.#queue.splice(0)) job.reject(failure);
          }
          if (this.#closed || this.#retryTimer) return;
          const delay = this.#retryDelay();
          this.#retryTimer = setTimeout(() => {
            this.#retryTimer = undefined;
            this.#replenish();
          }, delay);
          this.#retryTimer.unref();
        },
      );
    }
  }

  #noWorker(): BackendUnavailableError {
    return new BackendUnavailableError({
      message: `@engine/yara: no YARA worker is running (starting one failed: ${this.#lastFailure?.message ?? "unknown"}); retrying with backoff`,
      hint: "Check memory limits and the worker script; the pool keeps trying to start workers.",
      cause: this.#lastFailure,
    });
  }

  #adopt(worker: Worker): void {
    const slot: Slot = {
      worker,
      job: undefined,
      scans: 0,
      retiring: false,
      replaced: false,
      retryAfter: 0,
    };
    this.#slots.push(slot);
    worker.on("message", (message: WorkerResponse) => this.#onMessage(slot, message));
    worker.on("error", (error) => this.#replace(slot, error));
    worker.on("exit", (code) => {
      if (this.#slots.includes(slot))
        this.#replace(slot, new Error(`the YARA worker exited with code ${code}`));
    });
    this.#dispatch();
  }

  #onMessage(slot: Slot, message: WorkerResponse): void {
    const job = slot.job;
    if (
      !job ||
      (message.type !== "result" && message.type !== "scan-failed") ||
      message.id !== job.id
    )
      return;
    slot.job = undefined;
    slot.scans += 1;
    if (message.type === "result") job.resolve(message.matches);
    else if (message.unreadable) {
      job.reject(
        new ArtifactUnavailableError({
          message: `@engine/yara: ${message.message}`,
        }),
      );
    } else {
      job.reject(
        new EngineError({
          message: `@engine/yara: the scan failed: ${message.message}`,
        }),
      );
    }
    // A trapped instance fails every scan after it: replaced now. One that ran its share of
    // scans is replaced once its successor runs (no scan waits for the swap).
    if ((message.type === "scan-failed" && message.broken) || slot.replaced) this.#terminate(slot);
    else if (
      message.worn ||
      slot.scans >= (this.#options.recycleAfterScans ?? defaultRecycleAfterScans)
    )
      this.#retire(slot);
    this.#dispatch();
  }

  /**
   * Starts a successor for `slot`, which goes once the successor runs and its scan ended. One
   * worker retires at a time (workers reach their bound together: the pool must not double). A
   * successor that fails to start counts as a failed start (see {@link #replenish}), and the
   * next is tried after the same backoff.
   */
  #retire(slot: Slot): void {
    if (slot.retiring || this.#closed || Date.now() < slot.retryAfter) return;
    if (this.#slots.some((other) => other.retiring)) return;
    slot.retiring = true;
    this.#startCounted().then(
      () => {
        if (slot.job) slot.replaced = true;
        else this.#terminate(slot);
      },
      () => {
        slot.retiring = false;
        slot.retryAfter = Date.now() + this.#retryDelay();
        // The worn worker may have gone meanwhile (a trap, a deadline): the pool is whole again.
        this.#replenish();
      },
    );
  }

  /**
   * {@link #startWorker}, counted in {@link #starting} while it starts; its outcome resets or
   * counts {@link #failures} and {@link #lastFailure}.
   */
  async #startCounted(): Promise<void> {
    this.#starting += 1;
    try {
      await this.#startWorker();
      this.#failures = 0;
      this.#lastFailure = undefined;
    } catch (error) {
      this.#failures += 1;
      this.#lastFailure = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      this.#starting -= 1;
    }
  }

  /** The delay before the next start after {@link #failures} failed ones: doubling, at most 5 s. */
  #retryDelay(): number {
    return Math.min(
      (this.#options.retryDelayMs ?? 100) * 2 ** Math.max(0, this.#failures - 1),
      maximumRetryDelayMs,
    );
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (slot.job) continue;
      const job = this.#queue.shift();
      if (!job) return;
      slot.job = job;
      this.#send(slot, job).catch((error: unknown) => {
        if (slot.job !== job) return;
        // The artifact could not be read: the worker holds a half-sent job, so replace it.
        this.#terminate(slot);
        job.reject(job.signal.aborted ? errorFromSignal(job.signal) : error);
      });
    }
  }

  async #send(slot: Slot, job: Job): Promise<void> {
    const { artifact } = job;
    if (artifact.path !== undefined && artifact.replayable) {
      // The worker reads local files itself: no copy through the main thread.
      slot.worker.postMessage({
        type: "scan",
        id: job.id,
        path: artifact.path,
        externals: job.externals,
      } satisfies WorkerRequest);
      return;
    }
    slot.worker.postMessage({
      type: "scan",
      id: job.id,
      externals: job.externals,
    } satisfies WorkerRequest);
    for await (const chunk of artifact.stream({ signal: job.signal, maxBytes: job.maxBytes })) {
      const bytes = chunk as Uint8Array;
      for (let offset = 0; offset < bytes.byteLength; offset += transferChunkBytes) {
        if (slot.job !== job) return;
        // A copy of just this piece, moved (not cloned) to the worker: cloning a view would
        // serialise its whole backing buffer, and the caller's buffer must stay usable.
        // (`new Uint8Array(view)` copies; Buffer#slice would not.)
        const piece = new Uint8Array(
          bytes.subarray(offset, Math.min(offset + transferChunkBytes, bytes.byteLength)),
        );
        slot.worker.postMessage(
          { type: "chunk", id: job.id, bytes: piece } satisfies WorkerRequest,
          [piece.buffer],
        );
        if (bytes.byteLength > transferChunkBytes) await yieldToEventLoop();
      }
    }
    if (slot.job === job)
      slot.worker.postMessage({ type: "end", id: job.id } satisfies WorkerRequest);
  }

  #abort(job: Job): void {
    const queued = this.#queue.indexOf(job);
    if (queued !== -1) this.#queue.splice(queued, 1);
    const slot = this.#slots.find((candidate) => candidate.job === job);
    if (slot) this.#terminate(slot);
    job.reject(errorFromSignal(job.signal));
  }

  /** Stops a worker (its scan cannot be interrupted otherwise) and starts a replacement. */
  #terminate(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index === -1) return;
    this.#slots.splice(index, 1);
    slot.job = undefined;
    slot.worker.removeAllListeners("exit");
    slot.worker.terminate().catch(() => {});
    this.#replenish();
  }

  #replace(slot: Slot, error: Error): void {
    const job = slot.job;
    this.#terminate(slot);
    job?.reject(
      new BackendUnavailableError({
        message: `@engine/yara: the YARA worker failed during the scan: ${error.message}`,
        hint: "The artifact may have exhausted the worker's memory; the worker was replaced.",
        cause: error,
      }),
    );
  }
}
