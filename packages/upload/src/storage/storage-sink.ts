import type { Writable } from "node:stream";

/** What a sink is told about a file it is to hold (never a path from the client). */
export interface StorageFileInfo {
  /** A random id (UUID): what a sink should name the file by. */
  id: string;
  /** The form field it came in. */
  field: string;
  /** The client's file name (data, to keep as metadata; never a path). */
  filename: string;
  /** Its type by content. */
  type: string;
}

/** Where a committed file is, as the sink describes it (`path` for disk, `bytes` for memory). */
export interface StorageLocation {
  /** The sink's kind (`"disk"`, `"memory"`, or a custom sink's). */
  kind: string;
  /** The file's id in the sink. */
  id: string;
  /** Bytes written. */
  size: number;
  /** More the sink reports (a path, a bucket key, the bytes). */
  [key: string]: unknown;
}

/** One file being written: invisible to readers until `commit`, gone after `discard`. */
export interface StorageWriter {
  /** Where the bytes are written (its back-pressure is respected). */
  readonly stream: Writable;
  /** Makes the file visible (rename, upload completion) and says where it is. */
  commit(): Promise<StorageLocation>;
  /**
   * Removes what was written: after a failed write, and after `commit` too when the request
   * fails later (another file's commit): nothing of a refused request stays. Must not throw.
   */
  discard(): Promise<void>;
}

/**
 * A place files go: `diskStorage()` and `memoryStorage()` ship with the package; write your own
 * for S3 or others (write to a temporary key, make it visible on `commit`, delete on `discard`).
 */
export interface StorageSink {
  /** Opens a writer for one file. */
  open(file: StorageFileInfo): Promise<StorageWriter> | StorageWriter;
}
