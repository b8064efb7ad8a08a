// The walk's worker thread: walks with blocking calls (see walkPathsSync) and posts the entries
// in batches, no further ahead of its reader than the credit it was given (see walk-flow.ts).
import { parentPort, workerData } from "node:worker_threads";
import { errorMessage } from "../../operations/error-message.js";
import { excludeTest } from "./exclude-patterns.js";
import { type WalkEntry, walkPathsSync } from "./file-walk.js";
import { type WalkJob, type WalkMessage, walkFlow } from "./walk-flow.js";

/** Entries per batch at most. */
const batchEntries = 256;
/** A batch started this long ago (ms) is posted at the next entry, full or not. */
const batchMs = 20;
/** How long one wait for credit lasts before the stop flag is read again (ms). */
const creditWaitMs = 1000;

const job = workerData as WalkJob;
const flow = new Int32Array(job.flow);
const stopped = (): boolean => Atomics.load(flow, walkFlow.stop) !== 0;

function post(message: WalkMessage): void {
  parentPort?.postMessage(message);
}

/** Waits for credit to post one batch, and takes it; false once the walk must stop. */
function takeCredit(): boolean {
  for (;;) {
    if (stopped()) return false;
    const credit = Atomics.load(flow, walkFlow.credit);
    if (credit > 0) {
      if (Atomics.compareExchange(flow, walkFlow.credit, credit, credit - 1) === credit)
        return true;
      continue;
    }
    Atomics.wait(flow, walkFlow.credit, credit, creditWaitMs);
  }
}

function walk(): void {
  let batch: WalkEntry[] = [];
  let batchStarted = 0;
  const flush = (): boolean => {
    if (!takeCredit()) return false;
    post({ type: "entries", entries: batch });
    batch = [];
    return true;
  };
  /** Posts the batch when it is full, the reader waits, or it waited long enough. */
  const flushIfDue = (): boolean => {
    const due =
      batch.length >= batchEntries ||
      (batch.length > 0 &&
        (Atomics.load(flow, walkFlow.hungry) !== 0 || performance.now() - batchStarted >= batchMs));
    return !due || flush();
  };
  // Also before each entry's blocking calls: what was found is not held behind a slow stat.
  const beforeEntry = (): boolean => !flushIfDue() || stopped();
  const walked = walkPathsSync(job.paths, {
    exclude: excludeTest(job.exclude),
    stopped: beforeEntry,
  });
  for (const entry of walked) {
    if (batch.length === 0) batchStarted = performance.now();
    batch.push(entry);
    if (!flushIfDue()) return;
  }
  if (stopped() || (batch.length > 0 && !flush())) return;
  post({ type: "done" }); // only for a walk that went to its end
}

try {
  walk();
} catch (error) {
  post({ type: "failed", message: errorMessage(error) });
}
