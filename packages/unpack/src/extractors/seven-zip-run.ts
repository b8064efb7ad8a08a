import type { Worker } from "node:worker_threads";
import { errorFromSignal } from "@engine/core";
import { UnpackSkip } from "./extractor.js";
import {
  allowanceOffset,
  Control,
  controlBytes,
  type ExtractorMessage,
  type SevenZipJob,
  type WorkerEvent,
} from "./seven-zip-protocol.js";
import {
  releaseWorker,
  sevenZipModule,
  takeWorker,
  workerHeapMegabytes,
} from "./seven-zip-worker-pool.js";

/** Bytes 7-Zip's WebAssembly memory may grow to in one worker: 1 GiB (LZMA dictionaries up to ~1 GiB). */
export const sevenZipHeapLimitBytes = 1024 * 1024 * 1024;

let running = 0;

/** 7-Zip runs going on now (a run's worker is terminated, or kept idle, when its container is done). */
export function sevenZipWorkersRunning(): number {
  return running;
}

/** What a run needs besides the control words. */
export type SevenZipRunInput = Omit<SevenZipJob, "control">;

/**
 * One 7-Zip worker on one container: its events in order, with back-pressure (a chunk taken
 * lets the worker write another), the byte allowance kept up to date, and the thread
 * terminated on close or when `signal` fires (the deadline, the caller's abort).
 */
export class SevenZipRun {
  readonly #worker: Worker;
  readonly #control: Int32Array;
  readonly #allowance: BigInt64Array;
  readonly #events: WorkerEvent[] = [];
  #waiting: { resolve: () => void } | undefined;
  #failure: unknown;
  /** The job ended (done, or could not be opened): the worker may take another. */
  #ended = false;
  #closed = false;
  /** Set when the worker said its job is over (it may come before the run is closed). */
  #idleHeapBytes: number | undefined;
  /** Bytes of the chunks taken from the worker so far. */
  #taken = 0;
  readonly #onAbort: () => void;
  readonly #onMessage = (event: WorkerEvent) => this.#push(event);
  readonly #onError = (error: Error & { code?: string }) => this.#fail(failureOf(error));
  readonly #onExit = (code: number) =>
    this.#fail(
      new UnpackSkip("CORRUPT", `the 7-Zip worker stopped before it was done (exit code ${code})`),
    );

  private constructor(
    worker: Worker,
    control: SharedArrayBuffer,
    private readonly signal: AbortSignal,
    private readonly remainingBytes: () => number,
  ) {
    this.#worker = worker;
    this.#control = new Int32Array(control, 0, 4);
    this.#allowance = new BigInt64Array(control, allowanceOffset, 1);
    Atomics.store(this.#control, Control.stopEntry, -1);
    this.#allow();
    worker.on("message", this.#onMessage);
    worker.on("error", this.#onError);
    worker.on("exit", this.#onExit);
    this.#onAbort = () => {
      this.#fail(errorFromSignal(signal, "unpack"));
      void this.close();
    };
    signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  /** Starts a worker on `input`; throws the signal's reason if it already fired. */
  static async start(
    input: SevenZipRunInput,
    context: { signal: AbortSignal; remainingBytes(): number },
  ): Promise<SevenZipRun> {
    const module = await sevenZipModule();
    if (context.signal.aborted) throw errorFromSignal(context.signal, "unpack");
    const control = new SharedArrayBuffer(controlBytes);
    const worker = takeWorker(module);
    const job: SevenZipJob = { ...input, control };
    const transfer =
      "bytes" in input.container ? [input.container.bytes.buffer as ArrayBuffer] : [];
    worker.postMessage({ type: "start", job } satisfies ExtractorMessage, transfer);
    running += 1;
    return new SevenZipRun(worker, control, context.signal, context.remainingBytes);
  }

  /** The next event (a chunk taken counts as read: the worker may write another). */
  async next(): Promise<WorkerEvent> {
    const event = await this.peek();
    this.#events.shift();
    if (event.type === "chunk") {
      this.#taken += event.bytes.byteLength;
      Atomics.add(this.#control, Control.consumed, 1);
      Atomics.notify(this.#control, Control.consumed);
    }
    if (event.type === "done" || event.type === "unopened") this.#ended = true;
    this.#allow();
    return event;
  }

  /** The next event, left in place. */
  async peek(): Promise<WorkerEvent> {
    for (;;) {
      if (this.signal.aborted) throw errorFromSignal(this.signal, "unpack");
      const event = this.#events[0];
      if (event) return event;
      if (this.#failure !== undefined) throw this.#failure;
      await new Promise<void>((resolve) => {
        this.#waiting = { resolve };
      });
    }
  }

  /** Tells the worker which entries to extract (after the listing). */
  extract(selection: number[] | "all"): void {
    this.#worker.postMessage({ type: "extract", selection } satisfies ExtractorMessage);
  }

  /** Stops 7-Zip at `entry` if it is still writing it (its reader stopped early). */
  stop(entry: number): void {
    Atomics.store(this.#control, Control.stopEntry, entry);
    Atomics.notify(this.#control, Control.consumed);
  }

  /**
   * Ends the run (idempotent): a worker whose job ended is kept for the next container, one
   * still running (stopped early, the deadline) is terminated.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    running -= 1;
    this.signal.removeEventListener("abort", this.#onAbort);
    this.#worker.off("message", this.#onMessage);
    this.#worker.off("error", this.#onError);
    this.#worker.off("exit", this.#onExit);
    const reusable = this.#ended && this.#failure === undefined;
    this.#fail(new UnpackSkip("CORRUPT", "the 7-Zip run was closed"));
    if (reusable) releaseWorker(this.#worker, this.#idleHeapBytes);
    else await this.#worker.terminate();
  }

  /** The worker may produce what it produced so far plus what the unpack may still decode. */
  #allow(): void {
    const allowed = this.#taken + Math.max(0, this.remainingBytes());
    Atomics.store(this.#allowance, 0, BigInt(Math.min(allowed, Number.MAX_SAFE_INTEGER)));
  }

  #push(event: WorkerEvent): void {
    if (event.type === "idle") this.#idleHeapBytes = event.heapBytes;
    else this.#events.push(event);
    this.#wake();
  }

  #fail(failure: unknown): void {
    this.#failure ??= failure;
    this.#wake();
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve();
  }
}

/** A worker's failure as a skip: out of its JavaScript heap is a bound, anything else a failure to decode. */
function failureOf(error: Error & { code?: string }): UnpackSkip {
  if (error.code === "ERR_WORKER_OUT_OF_MEMORY")
    return new UnpackSkip(
      "LIMITS",
      `the 7-Zip worker ran out of its ${workerHeapMegabytes} MiB of JavaScript heap`,
    );
  return new UnpackSkip("CORRUPT", `7-Zip failed: ${error.message}`);
}
