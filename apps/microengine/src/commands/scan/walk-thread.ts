import { Worker } from "node:worker_threads";
import { EngineError } from "@engine/core";
import { errorMessage } from "../../operations/error-message.js";
import type { WalkEntry } from "./file-walk.js";
import { NextChange } from "./next-change.js";
import { type WalkJob, type WalkMessage, walkFlow, walkFlowSlots } from "./walk-flow.js";

/** The worker script: next to this module in `dist/`; tests running from `src/` use the build. */
const workerUrl = new URL(
  import.meta.url.endsWith(".ts") ? "../../../dist/walk-worker.js" : "./walk-worker.js",
  import.meta.url,
);

/**
 * Batches the walk's worker may post ahead of the reader (each up to 256 entries): what the
 * walk holds beyond what its reader took is bounded by this.
 */
const batchesAhead = 2;

/** The walk's worker thread stopped before it was done: the files after it were not walked. */
export class WalkFailedError extends EngineError {
  constructor(reason: string, cause?: unknown) {
    super({
      message:
        `scan: the directory walk stopped before it was done (${reason}): the entries after ` +
        "the last one reported were not walked nor scanned; scan again",
      cause,
    });
  }
}

/** Messages from the worker, read one at a time; an exit before `done` is a failure. */
class WalkInbox {
  readonly #messages: WalkMessage[] = [];
  #failure: Error | undefined;
  readonly #change = new NextChange();

  constructor(worker: Worker) {
    worker.on("message", (message: WalkMessage) => this.#put(message));
    worker.on("error", (error: Error & { code?: string }) =>
      this.#fail(
        new WalkFailedError(
          error.code === "MODULE_NOT_FOUND" || error.code === "ERR_MODULE_NOT_FOUND"
            ? `its worker script is missing, ${errorMessage(error)}: build the engine (pnpm build)`
            : `its worker thread failed: ${errorMessage(error)}`,
          error,
        ),
      ),
    );
    // Messages posted before the worker ended are delivered before its exit.
    worker.on("exit", (code: number) =>
      this.#fail(new WalkFailedError(`its worker thread exited with code ${code}`)),
    );
  }

  get empty(): boolean {
    return this.#messages.length === 0;
  }

  /** The next message; throws once the worker failed or ended and every message was read. */
  async next(signal: AbortSignal | undefined): Promise<WalkMessage | undefined> {
    while (this.#messages.length === 0) {
      if (this.#failure) throw this.#failure;
      if (signal?.aborted) return undefined;
      await this.#change.wait();
    }
    return this.#messages.shift();
  }

  /** Wakes a reader waiting in {@link next} (to see an abort). */
  wake(): void {
    this.#change.notify();
  }

  #put(message: WalkMessage): void {
    this.#messages.push(message);
    this.wake();
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    this.wake();
  }
}

/**
 * Walks `paths` as {@link import("./file-walk.js").walkPathsSync} does (same entries, same
 * order), in a worker thread: its blocking calls never hold the event loop, and it costs a
 * fifth of a walk in promises. The worker goes at most {@link batchesAhead} batches ahead of the
 * reader; it stops, between entries, once `signal` is aborted or the reader stops reading.
 * Throws {@link WalkFailedError} when the worker fails or ends before the walk is done: a walk
 * cut short never looks complete. `onWorker` is for tests.
 */
export async function* walkPaths(
  paths: readonly string[],
  options: {
    exclude?: readonly string[] | undefined;
    signal?: AbortSignal | undefined;
    onWorker?: (worker: Worker) => void;
  } = {},
): AsyncGenerator<WalkEntry> {
  const { signal } = options;
  if (signal?.aborted) return;
  const flow = new Int32Array(new SharedArrayBuffer(walkFlowSlots * Int32Array.BYTES_PER_ELEMENT));
  flow[walkFlow.credit] = batchesAhead;
  const job: WalkJob = {
    paths: [...paths],
    exclude: [...(options.exclude ?? [])],
    flow: flow.buffer as SharedArrayBuffer,
  };
  const worker = new Worker(workerUrl, { workerData: job });
  const inbox = new WalkInbox(worker);
  options.onWorker?.(worker);
  const onAbort = () => inbox.wake();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      Atomics.store(flow, walkFlow.hungry, inbox.empty ? 1 : 0);
      const message = await inbox.next(signal);
      Atomics.store(flow, walkFlow.hungry, 0);
      if (message === undefined || message.type === "done") return;
      if (message.type === "failed") throw new WalkFailedError(message.message);
      Atomics.add(flow, walkFlow.credit, 1);
      Atomics.notify(flow, walkFlow.credit);
      for (const entry of message.entries) {
        if (signal?.aborted) return;
        yield entry;
      }
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    Atomics.store(flow, walkFlow.stop, 1);
    Atomics.notify(flow, walkFlow.credit);
    // Not awaited: a worker inside a call on a hung mount ends only when that call returns (and
    // holds the process's exit until then, as a thread of the pool did for the walk before).
    worker.unref();
    void worker.terminate();
  }
}
