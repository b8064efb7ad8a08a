import { Writable } from "node:stream";
import type {
  StorageFileInfo,
  StorageLocation,
  StorageSink,
  StorageWriter,
} from "./storage-sink.js";

/** A file {@link memoryStorage} holds. */
export interface MemoryFile {
  info: StorageFileInfo;
  bytes: Buffer;
}

/** A sink that keeps files in memory, and lists the committed ones in `files` (by id). */
export interface MemoryStorage extends StorageSink {
  /** The committed files, by id (remove them when done: nothing is evicted). */
  readonly files: Map<string, MemoryFile>;
}

/**
 * Files kept in memory (bounded by the guard's `fileBytes` and `requestBytes` limits): for
 * tests, small files, or handing the bytes on yourself. A committed file's location carries
 * its `bytes`.
 *
 * @example
 * const storage = memoryStorage();
 * // after a request: storage.files.get(file.id)?.bytes
 */
export function memoryStorage(): MemoryStorage {
  const files = new Map<string, MemoryFile>();
  return {
    files,
    open(info: StorageFileInfo): StorageWriter {
      let chunks: Buffer[] = [];
      let size = 0;
      const stream = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          chunks.push(chunk);
          size += chunk.byteLength;
          callback();
        },
      });
      return {
        stream,
        async commit(): Promise<StorageLocation> {
          const bytes = Buffer.concat(chunks, size);
          chunks = [];
          files.set(info.id, { info, bytes });
          return { kind: "memory", id: info.id, size, bytes };
        },
        async discard(): Promise<void> {
          chunks = [];
          files.delete(info.id);
          stream.destroy();
        },
      };
    },
  };
}
