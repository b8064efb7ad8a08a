import { constants, type Stats } from "node:fs";
import { open } from "node:fs/promises";

/** What {@link readRuleFile} found: the text, or why there is none. */
export type RuleFileRead =
  | {
      ok: true;
      /** The file's text (UTF-8). */
      text: string;
      /** Bytes read, at most the `maxBytes` asked for. */
      bytes: number;
    }
  | {
      ok: false;
      /**
       * `missing`: no such file; `unreadable`: it could not be opened or read (the message
       * says why); `not-regular-file`: a FIFO, device, socket or directory, never read;
       * `too-large`: more than `maxBytes` bytes.
       */
      reason: "missing" | "unreadable" | "not-regular-file" | "too-large";
      /** Why, in a few words, e.g. "is a FIFO, not a regular file". */
      message: string;
      /** Bytes read before giving up: up to `maxBytes + 1` (0 when `stat` already said too large). */
      bytes: number;
    };

/** Largest single read, in bytes (1 MiB): a file is read in pieces up to the bound. */
const readChunkBytes = 1024 * 1024;

/** What a file that is not a regular file is, for messages. */
function kindOf(info: Stats): string {
  if (info.isFIFO()) return "a FIFO";
  if (info.isCharacterDevice()) return "a character device";
  if (info.isBlockDevice()) return "a block device";
  if (info.isSocket()) return "a socket";
  if (info.isDirectory()) return "a directory";
  return "not a regular file";
}

/**
 * Reads one rule file without ever blocking and without reading more than `maxBytes` bytes.
 * It is opened with `O_NONBLOCK` (a FIFO or device would otherwise hold a thread of the libuv
 * pool, and every later load and the process's exit, for good), `fstat`ed, and read only when
 * it is a regular file; then at most `maxBytes + 1` bytes are read from the handle, whatever
 * size `stat` reports (`/proc` files report 0). Never throws: failures are returned.
 * @param path the file to read (symlinks are followed)
 * @param maxBytes the most bytes the file may have; one more means `too-large`
 */
export async function readRuleFile(path: string, maxBytes: number): Promise<RuleFileRead> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, reason: "missing", message: "not found", bytes: 0 };
    // ENXIO: a unix socket (open(2) refuses it).
    if (code === "ENXIO")
      return { ok: false, reason: "not-regular-file", message: "is a socket", bytes: 0 };
    return { ok: false, reason: "unreadable", message: String(error), bytes: 0 };
  }
  let total = 0;
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      return {
        ok: false,
        reason: "not-regular-file",
        message: `is ${kindOf(info)}, not a regular file`,
        bytes: 0,
      };
    }
    if (info.size > maxBytes) {
      return { ok: false, reason: "too-large", message: `has ${info.size} bytes`, bytes: 0 };
    }
    const chunks: Buffer[] = [];
    // One byte past the bound tells a file of exactly maxBytes from a longer one.
    while (total <= maxBytes) {
      const buffer = Buffer.allocUnsafe(Math.min(readChunkBytes, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
    if (total > maxBytes) {
      return {
        ok: false,
        reason: "too-large",
        message: `has more than ${maxBytes} bytes`,
        bytes: total,
      };
    }
    return { ok: true, text: Buffer.concat(chunks, total).toString("utf8"), bytes: total };
  } catch (error) {
    return { ok: false, reason: "unreadable", message: String(error), bytes: total };
  } finally {
    await handle.close().catch(() => {});
  }
}
