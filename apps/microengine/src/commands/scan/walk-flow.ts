import type { WalkEntry } from "./file-walk.js";

/**
 * What the walk's worker thread and the event loop share, as an `Int32Array` over a
 * `SharedArrayBuffer`: {@link walkFlowSlots} slots, indexed by these.
 */
export const walkFlow = {
  /** Batches the worker may post before the reader takes one (the reader adds one per batch). */
  credit: 0,
  /** Set by the reader when the walk must stop (checked between entries). */
  stop: 1,
  /** Set by the reader while it has nothing left to read: the worker posts what it has at once. */
  hungry: 2,
} as const;

/** Slots of the shared flow array (see {@link walkFlow}). */
export const walkFlowSlots = Object.keys(walkFlow).length;

/** What the reader hands the walk's worker thread (`workerData`). */
export interface WalkJob {
  paths: readonly string[];
  /** `--exclude` globs (see excludeTest). */
  exclude: readonly string[];
  /** The shared flow array's buffer (see {@link walkFlow}). */
  flow: SharedArrayBuffer;
}

/** What the walk's worker thread posts: entries in walk order, then `done` once. */
export type WalkMessage =
  | { type: "entries"; entries: WalkEntry[] }
  | { type: "done" }
  | { type: "failed"; message: string };
