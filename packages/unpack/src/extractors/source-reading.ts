import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { ContainerSource } from "./extractor.js";

/**
 * Size of the chunks zlib decoders hand out, in bytes. Node's default, 16 KiB, means four times
 * the hops through the walk's generators, the hash and the store for the same bytes; 256 KiB
 * means a fresh 256 KiB buffer for every output chunk however little it holds (most members
 * are small), and the garbage collector running after them: measured on a copy of
 * /usr/share/doc (1,848 .gz files) with YARA and unpacking, 64 KiB took 8.3-9.0 s of CPU
 * against 10.5-11.5 s with 256 KiB (and 8.7-9.1 s with 16 KiB).
 */
export const decodedChunkBytes = 64 * 1024;

/** Size of the chunks a file is read in (see decodedChunkBytes: the same trade, measured). */
export const fileChunkBytes = 64 * 1024;

/** Reads a source from `start` on, in chunks (a file from its path, bytes without a copy). */
export async function* streamFrom(
  source: ContainerSource,
  start: number,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const { artifact } = source;
  if (artifact.path !== undefined) {
    const stream = createReadStream(artifact.path, {
      start,
      signal,
      highWaterMark: fileChunkBytes,
    });
    for await (const chunk of stream) yield chunk as Buffer;
    return;
  }
  const bytes = await artifact.bytes({ signal });
  const chunk = 256 * 1024; // views of bytes in memory: nothing allocated, fewer hops
  for (let offset = start; offset < bytes.byteLength; offset += chunk)
    yield bytes.subarray(offset, Math.min(offset + chunk, bytes.byteLength));
}

/** Up to `length` bytes of a source from `start` (fewer at its end). */
export async function readRange(
  source: ContainerSource,
  start: number,
  length: number,
  signal: AbortSignal,
): Promise<Uint8Array> {
  const { artifact } = source;
  if (artifact.path === undefined) {
    const bytes = await artifact.bytes({ signal });
    return bytes.subarray(start, Math.min(start + length, bytes.byteLength));
  }
  const handle = await open(artifact.path, "r");
  try {
    const buffer = Buffer.alloc(Math.max(0, Math.min(length, source.size - start)));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
