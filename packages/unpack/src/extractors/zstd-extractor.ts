import { errorFromSignal } from "@engine/core";
import type { Decompress } from "fzstd";
import type { UnpackLimits } from "../unpack-options.js";
import { ExactReader } from "./exact-reader.js";
import {
  type ContainerSource,
  type ExtractContext,
  type ExtractedEntry,
  type Extractor,
  UnpackSkip,
} from "./extractor.js";
import { lazyLibrary } from "./library-loading.js";
import { streamFrom } from "./source-reading.js";
import { innerName } from "./zlib-extractors.js";

/** fzstd, loaded at the first zstd frame. */
const fzstdLibrary = lazyLibrary("fzstd", () => import("fzstd"));

/** A zstd frame's magic number ([RFC 8878] 3.1.1), little-endian. */
const frameMagic = 0xfd2fb528;
/** Skippable frames' magic numbers are 0x184D2A50 to 0x184D2A5F ([RFC 8878] 3.1.2). */
const isSkippableMagic = (magic: number): boolean => magic >>> 4 === 0x184d2a5;
/** Largest block, in bytes: Block_Maximum_Size is at most 128 KiB ([RFC 8878] 3.1.1.2). */
const maximumBlockBytes = 128 * 1024;
/** Largest window fzstd 0.1.1 decodes, in bytes (it refuses more). */
const fzstdMaximumWindowBytes = 2_145_386_496;
/**
 * Window bytes fzstd may shift in one member, as a multiple of `maxMemberBytes`. fzstd moves
 * its whole window after every block, so a stream of tiny blocks with a large window costs
 * window × blocks of copying for almost no output. A legitimate stream shifts about
 * window / 128 KiB bytes per byte it decodes: 64 × its size at zstd -19 (8 MiB window).
 */
const windowShiftFactor = 128;
/** Synchronous decoding between two turns of the event loop (so a deadline can fire), in ms. */
const decodingSliceMilliseconds = 20;

/** What a frame header says ([RFC 8878] 3.1.1.1). */
interface FrameHeader {
  /** The header's bytes after the magic number. */
  bytes: Uint8Array;
  /** Bytes of history the decoder keeps: what fzstd allocates for the frame. */
  windowBytes: number;
  /** The frame's declared content size, when it declares one. */
  declaredBytes: number | undefined;
  /** A 4-byte content checksum follows the last block. */
  checksum: boolean;
  dictionaryId: number;
}

/** `length` bytes at `at`, little-endian (exact to 2^53). */
function littleEndian(bytes: Uint8Array, at: number, length: number): number {
  let value = 0;
  for (let index = length - 1; index >= 0; index -= 1)
    value = value * 256 + (bytes[at + index] as number);
  return value;
}

const truncated = (what: string) =>
  new UnpackSkip("CORRUPT", `the zstd stream is cut short inside ${what}`);

/** Reads a frame header after its magic number. */
async function readFrameHeader(reader: ExactReader): Promise<FrameHeader> {
  const descriptorBytes = await reader.read(1);
  const descriptor = descriptorBytes[0];
  if (descriptor === undefined) throw truncated("a frame header");
  if (descriptor & 0x08)
    throw new UnpackSkip("CORRUPT", "a zstd frame header sets its reserved bit");
  const sizeFlag = descriptor >> 6;
  const singleSegment = (descriptor & 0x20) !== 0;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3] as number;
  const sizeBytes = sizeFlag === 0 ? (singleSegment ? 1 : 0) : 1 << sizeFlag;
  const rest = await reader.read((singleSegment ? 0 : 1) + dictionaryBytes + sizeBytes);
  if (rest.byteLength < (singleSegment ? 0 : 1) + dictionaryBytes + sizeBytes)
    throw truncated("a frame header");
  let at = 0;
  let windowBytes = 0;
  if (!singleSegment) {
    const windowDescriptor = rest[0] as number;
    const base = 2 ** (10 + (windowDescriptor >> 3));
    windowBytes = base + (base / 8) * (windowDescriptor & 7);
    at = 1;
  }
  const dictionaryId = littleEndian(rest, at, dictionaryBytes);
  at += dictionaryBytes;
  const declaredBytes =
    sizeBytes === 0 ? undefined : littleEndian(rest, at, sizeBytes) + (sizeBytes === 2 ? 256 : 0);
  // A single-segment frame's window is its whole content.
  if (singleSegment) windowBytes = declaredBytes ?? 0;
  return {
    bytes: Buffer.concat([descriptorBytes, rest]),
    windowBytes,
    declaredBytes,
    checksum: (descriptor & 0x04) !== 0,
    dictionaryId,
  };
}

/**
 * Refuses, before fzstd allocates anything, a frame it cannot decode within the bounds: a
 * declared content or a window (fzstd allocates the window whole, and for a single-segment
 * frame the window is the declared content) larger than `maxMemberBytes`.
 */
function checkFrame(header: FrameHeader, limits: UnpackLimits): void {
  if (header.dictionaryId !== 0)
    throw new UnpackSkip(
      "UNSUPPORTED",
      `a zstd frame needs dictionary ${header.dictionaryId}, which is not in the stream`,
    );
  if (header.declaredBytes !== undefined && header.declaredBytes > limits.maxMemberBytes)
    throw new UnpackSkip(
      "LIMITS",
      `a zstd frame declares ${header.declaredBytes} bytes, more than maxMemberBytes (${limits.maxMemberBytes} bytes)`,
      "maxMemberBytes",
    );
  if (header.windowBytes > limits.maxMemberBytes)
    throw new UnpackSkip(
      "LIMITS",
      `a zstd frame needs a ${header.windowBytes}-byte window (decoder memory), more than maxMemberBytes (${limits.maxMemberBytes} bytes)`,
      "maxMemberBytes",
    );
  if (header.windowBytes > fzstdMaximumWindowBytes)
    throw new UnpackSkip(
      "UNSUPPORTED",
      `a zstd frame needs a ${header.windowBytes}-byte window; fzstd decodes up to ${fzstdMaximumWindowBytes}`,
    );
}

/** Feeds fzstd; what it cannot decode is corrupt. */
function push(decoder: Decompress, bytes: Uint8Array, final = false): void {
  try {
    decoder.push(bytes, final);
  } catch (error) {
    if (error instanceof UnpackSkip) throw error;
    throw new UnpackSkip(
      "CORRUPT",
      `a zstd frame does not decode: ${(error as Error)?.message ?? String(error)}`,
    );
  }
}

/** Passes over a skippable frame (its content is metadata, as zstd does). */
async function skipSkippableFrame(reader: ExactReader): Promise<void> {
  const sizeBytes = await reader.read(4);
  if (sizeBytes.byteLength < 4) throw truncated("a skippable frame's header");
  const size = littleEndian(sizeBytes, 0, 4);
  if ((await reader.skip(size)) < size) throw truncated("a skippable frame");
}

/** Gives the event loop a turn every few ms of decoding, and stops when the walk is stopped. */
function createPacer(signal: AbortSignal): () => Promise<void> {
  let sliceStart = Date.now();
  return async () => {
    if (Date.now() - sliceStart < decodingSliceMilliseconds) return;
    await new Promise((resolve) => setImmediate(resolve));
    if (signal.aborted) throw errorFromSignal(signal, "unpack");
    sliceStart = Date.now();
  };
}

/**
 * The decoded content of every frame, in order. Each frame header is read here first (and
 * refused past the bounds), then its blocks are read one at a time and given to fzstd's
 * streaming decoder one at a time: each push decodes at most one block (at most 128 KiB out),
 * so the walker's counters see every block's bytes before the next one is decoded.
 */
async function* zstdContent(
  source: ContainerSource,
  context: ExtractContext,
): AsyncGenerator<Uint8Array> {
  const reader = new ExactReader(streamFrom(source, 0, context.signal));
  const shiftBudget = windowShiftFactor * context.limits.maxMemberBytes;
  const pace = createPacer(context.signal);
  let shifted = 0;
  let frames = 0;
  try {
    for (;;) {
      const magicBytes = await reader.read(4);
      if (magicBytes.byteLength === 0) break;
      if (magicBytes.byteLength < 4) throw truncated("a frame's magic number");
      const magic = littleEndian(magicBytes, 0, 4);
      if (isSkippableMagic(magic)) {
        await skipSkippableFrame(reader);
        continue;
      }
      if (magic !== frameMagic)
        throw new UnpackSkip(
          "CORRUPT",
          frames === 0
            ? "no zstd frame at the start"
            : `the bytes at ${reader.offset - 4} (after ${frames} zstd frames) are not a zstd frame`,
        );
      frames += 1;
      const header = await readFrameHeader(reader);
      checkFrame(header, context.limits);
      const output: Uint8Array[] = [];
      const { Decompress } = await fzstdLibrary();
      const decoder = new Decompress((chunk) => {
        if (chunk.byteLength > 0) output.push(chunk);
      });
      push(decoder, Buffer.concat([magicBytes, header.bytes]));
      for (let last = false; !last; ) {
        const blockHeader = await reader.read(3);
        if (blockHeader.byteLength < 3) throw truncated("a block header");
        const value = littleEndian(blockHeader, 0, 3);
        last = (value & 1) === 1;
        const type = (value >> 1) & 3;
        const size = value >>> 3;
        if (type === 3) throw new UnpackSkip("CORRUPT", "a zstd block has the reserved type 3");
        if (size > maximumBlockBytes)
          throw new UnpackSkip("CORRUPT", `a zstd block of ${size} bytes, more than 128 KiB`);
        // An RLE block is one byte repeated `size` times.
        const body = await reader.read(type === 1 ? 1 : size);
        if (body.byteLength < (type === 1 ? 1 : size)) throw truncated("a block");
        shifted += header.windowBytes;
        if (shifted > shiftBudget)
          throw new UnpackSkip(
            "LIMITS",
            `zstd blocks too small for their ${header.windowBytes}-byte window: fzstd would shift more than ${windowShiftFactor} × maxMemberBytes (${context.limits.maxMemberBytes} bytes) of window`,
            "maxMemberBytes",
          );
        push(decoder, Buffer.concat([blockHeader, body]));
        yield* output.splice(0);
        await pace();
      }
      if (header.checksum) {
        const checksum = await reader.read(4);
        if (checksum.byteLength < 4) throw truncated("a frame's checksum");
        push(decoder, checksum);
      }
      // The frame must be complete: fzstd throws on one it still waits bytes for.
      push(decoder, new Uint8Array(0), true);
      yield* output.splice(0);
    }
  } finally {
    await reader.close();
  }
}

/**
 * Zstandard (RFC 8878), streamed with fzstd: every frame in order (concatenated frames decode
 * as one content, as `zstd -d` does), skippable frames passed over. A frame needing more memory
 * than `maxMemberBytes` (its window, or for a single-segment frame its declared size) is
 * refused before it is decoded; dictionaries are not supported; a stream cut short, a bad block
 * or bytes after the last frame that are not a frame are corrupt. fzstd does not verify the
 * optional content checksum.
 */
export const zstdExtractor: Extractor = {
  format: "zstd",
  async *entries(source, context): AsyncGenerator<ExtractedEntry> {
    yield {
      kind: "file",
      name: innerName(source, /\.(t?zst|zstd)$/i),
      compressedSize: source.size,
      open: () => zstdContent(source, context),
    };
  },
};
