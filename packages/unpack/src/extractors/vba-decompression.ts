import { errorFromSignal } from "@engine/core";
import { UnpackSkip } from "./extractor.js";

/** Bytes one chunk decompresses to at most ([MS-OVBA] 2.4.1.1.4). */
const chunkBytes = 4096;

const corrupt = (reason: string) =>
  new UnpackSkip("CORRUPT", `a VBA compressed container ${reason}`);

/**
 * Decompresses one CompressedChunk at `start` of `container` ([MS-OVBA] 2.4.1.3.2): a raw chunk
 * (flag 0) is 4096 bytes as they are; a compressed one is token sequences, each a flag byte
 * then eight tokens, a literal byte (bit 0) or a 2-byte copy token (bit 1) repeating earlier
 * bytes of the chunk. Returns the chunk's bytes and where the next chunk starts.
 */
function decompressChunk(container: Uint8Array, start: number): { bytes: Uint8Array; end: number } {
  if (start + 2 > container.length) throw corrupt("ends inside a chunk header");
  const header = (container[start] as number) | ((container[start + 1] as number) << 8);
  if (((header >> 12) & 7) !== 3)
    throw corrupt(`has a chunk header with signature ${(header >> 12) & 7} (3 expected)`);
  const end = Math.min(container.length, start + (header & 0x0fff) + 3);
  const compressed = (header & 0x8000) !== 0;
  let position = start + 2;
  if (!compressed) {
    // A raw chunk: 4096 bytes (fewer only when the container ends first).
    const rawEnd = Math.min(container.length, position + chunkBytes);
    return { bytes: container.slice(position, rawEnd), end: rawEnd };
  }
  const output = new Uint8Array(chunkBytes);
  let length = 0;
  while (position < end) {
    const flags = container[position] as number;
    position += 1;
    for (let bit = 0; bit < 8 && position < end; bit += 1) {
      if (((flags >> bit) & 1) === 0) {
        if (length >= chunkBytes) throw corrupt("has a chunk longer than 4096 bytes");
        output[length] = container[position] as number;
        length += 1;
        position += 1;
        continue;
      }
      if (position + 2 > end) throw corrupt("ends inside a copy token");
      const token = (container[position] as number) | ((container[position + 1] as number) << 8);
      position += 2;
      // CopyToken Help (2.4.1.3.19.1): the split between offset and length bits depends on
      // how far into the chunk the decompression is.
      let bitCount = 4;
      while (1 << bitCount < length) bitCount += 1;
      const lengthMask = 0xffff >> bitCount;
      const copyLength = (token & lengthMask) + 3;
      const offset = (token >> (16 - bitCount)) + 1;
      if (length === 0 || offset > length)
        throw corrupt("has a copy token reaching before its chunk");
      if (length + copyLength > chunkBytes) throw corrupt("has a chunk longer than 4096 bytes");
      for (let index = 0; index < copyLength; index += 1) {
        output[length] = output[length - offset] as number;
        length += 1;
      }
    }
  }
  return { bytes: output.subarray(0, length), end };
}

/**
 * Decompresses an MS-OVBA CompressedContainer ([MS-OVBA] 2.4.1: the `dir` stream, a module's
 * source), chunk by chunk: each yielded array is one chunk, at most 4096 bytes, so the caller
 * counts the output as it comes (a container decompresses to at most about 700 times its
 * size). Throws `UnpackSkip` (`CORRUPT`) for a bad signature byte, chunk header or token.
 */
export function* vbaDecompressedChunks(container: Uint8Array): Generator<Uint8Array> {
  if (container[0] !== 1)
    throw corrupt(`starts with ${container[0] ?? "nothing"} (signature byte 1 expected)`);
  for (let position = 1; position < container.length; ) {
    const { bytes, end } = decompressChunk(container, position);
    position = end;
    yield bytes;
  }
}

/**
 * A whole MS-OVBA container decompressed, refused past `maxBytes` (`LIMITS`, `limit`) before
 * more is decompressed. Synchronous: the extractor reads containers chunk by chunk instead
 * ({@link vbaDecompressedChunks} through {@link paced}).
 */
export function vbaDecompress(
  container: Uint8Array,
  maxBytes: number,
  limit: "maxMemberBytes" | "maxTotalBytes" = "maxMemberBytes",
): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const chunk of vbaDecompressedChunks(container)) {
    total += chunk.byteLength;
    if (total > maxBytes)
      throw new UnpackSkip(
        "LIMITS",
        `a VBA compressed container decompresses to more than ${maxBytes} bytes`,
        limit,
      );
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/**
 * Longest stretch, in ms, {@link paced} holds the event loop (the items' work and what its
 * consumer does with them in between) before it gives the event loop a turn.
 */
export const pacedTurnMs = 5;

/**
 * The items of `items` (a synchronous generator doing CPU work, such as
 * {@link vbaDecompressedChunks}) without holding the event loop: once {@link pacedTurnMs} ms
 * have passed since the last turn it waits for one (`setImmediate`: the deadline's timer can
 * fire), and it throws the signal's error (`ScanTimeoutError`, `ScanAbortedError`) as soon as
 * `signal` fired. Returning the iterator early returns `items`.
 */
export async function* paced<T>(items: Iterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  let lastTurn = performance.now();
  for (const item of items) {
    if (performance.now() - lastTurn >= pacedTurnMs) {
      await new Promise((resolve) => setImmediate(resolve));
      lastTurn = performance.now();
    }
    if (signal.aborted) throw errorFromSignal(signal, "unpack");
    yield item;
  }
}
