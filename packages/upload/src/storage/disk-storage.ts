import { mkdir, open, rename, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { finished } from "node:stream/promises";
import { parseOptions } from "@engine/core";
import { z } from "zod";
import type {
  StorageFileInfo,
  StorageLocation,
  StorageSink,
  StorageWriter,
} from "./storage-sink.js";

const diskStorageOptionsSchema = z.strictObject({
  /** The directory accepted files land in (created if missing). */
  directory: z.string().min(1),
  /** Permission bits of stored files. Default 0o600 (the owner only). */
  mode: z.number().int().min(0).max(0o777).default(0o600),
});

/** Options of {@link diskStorage}. */
export type DiskStorageOptions = z.input<typeof diskStorageOptionsSchema>;

/**
 * Files on disk under `directory`, named by their id (a UUID; the client's file name is never
 * part of a path). A file is written as `.<id>.partial` (created exclusively, mode 0o600) and
 * renamed to `<id>` on commit, so a reader of the directory never sees an unscanned file under
 * a final name; a discarded one is deleted.
 *
 * @example
 * const storage = diskStorage({ directory: "./uploads" });
 */
export function diskStorage(options: DiskStorageOptions): StorageSink {
  const settings = parseOptions(diskStorageOptionsSchema, options, {
    where: "@engine/upload: diskStorage",
  });
  const directory = resolve(settings.directory);
  let created: Promise<unknown> | undefined;
  return {
    async open(file: StorageFileInfo): Promise<StorageWriter> {
      created ??= mkdir(directory, { recursive: true });
      await created;
      const partial = join(directory, `.${file.id}.partial`);
      const handle = await open(partial, "wx", settings.mode);
      const stream = handle.createWriteStream();
      let discarded = false;
      let committed: string | undefined;
      return {
        stream,
        async commit(): Promise<StorageLocation> {
          if (!stream.writableFinished) await finished(stream);
          const path = join(directory, file.id);
          await rename(partial, path);
          committed = path;
          return { kind: "disk", id: file.id, size: stream.bytesWritten, path };
        },
        async discard(): Promise<void> {
          if (discarded) return;
          discarded = true;
          stream.destroy();
          await finished(stream).catch(() => undefined);
          await handle.close().catch(() => undefined);
          await rm(committed ?? partial, { force: true }).catch(() => undefined);
        },
      };
    },
  };
}
