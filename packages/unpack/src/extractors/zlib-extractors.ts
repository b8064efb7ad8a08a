import { Readable } from "node:stream";
import { createBrotliDecompress, createInflateRaw } from "node:zlib";
import { crc32 } from "./crc32.js";
import {
  type ContainerSource,
  type ExtractContext,
  type ExtractedEntry,
  type Extractor,
  UnpackSkip,
} from "./extractor.js";
import { decodedChunkBytes, readRange, streamFrom } from "./source-reading.js";

/** The entry name of a stream container's content: its own name less the extension, or `content`. */
export function innerName(source: ContainerSource, extensions: RegExp): string {
  const stripped = source.name.replace(extensions, "");
  return stripped && stripped !== source.name ? stripped : "content";
}

/**
 * The output of a zlib `decoder` fed from `input`, read with back-pressure (so a bomb decodes
 * no faster than its reader counts it); the decoder ends at the end of its stream.
 */
async function* decoded(
  input: AsyncIterable<Uint8Array>,
  decoder: ReturnType<typeof createInflateRaw>,
): AsyncGenerator<Uint8Array> {
  const source = Readable.from(input);
  source.on("error", (error) => decoder.destroy(error));
  source.pipe(decoder);
  try {
    for await (const chunk of decoder) yield chunk as Buffer;
  } finally {
    source.unpipe(decoder);
    source.destroy();
    decoder.destroy();
  }
}

/**
 * gzip (RFC 1952), member by member as `gunzip` reads them: each member's header is parsed
 * here, its deflate body inflated raw (with back-pressure), and its trailer found by its
 * CRC-32 and size; members that follow one another decode as one content. Bytes after the
 * last member that are not gzip (a zip appended, which `unzip` finds) come out as a second
 * entry, `(trailing data)`, identified on their own. A member that does not decode, or whose
 * trailer is missing, is corrupt.
 */
export const gzipExtractor: Extractor = {
  format: "gzip",
  async *entries(source, context): AsyncGenerator<ExtractedEntry> {
    const state = { trailingAt: -1 };
    yield {
      kind: "file",
      name: innerName(source, /\.(t?gz|gzip)$/i),
      compressedSize: source.size,
      open: () => gzipMembers(source, context, state),
    };
    if (state.trailingAt > 0 && state.trailingAt < source.size) {
      const start = state.trailingAt;
      yield {
        kind: "file",
        name: "(trailing data)",
        compressedSize: source.size - start,
        hidden: true,
        open: () => streamFrom(source, start, context.signal),
      };
    }
  },
};

/** Where a gzip member's deflate body starts, or -1 when no gzip header is at `offset`. */
async function gzipBodyStart(
  source: ContainerSource,
  offset: number,
  signal: AbortSignal,
): Promise<number> {
  // The fixed part, then optional extra field, name, comment (each bounded) and header CRC.
  const head = Buffer.from(
    await readRange(source, offset, 10 + 2 + 65_535 + 2 * 65_536 + 2, signal),
  );
  if (head.length < 10 || head[0] !== 0x1f || head[1] !== 0x8b || head[2] !== 8) return -1;
  const flags = head[3] as number;
  let position = 10;
  if (flags & 4) position += 2 + head.readUInt16LE(position);
  for (const flag of [8, 16]) {
    if (!(flags & flag)) continue;
    const end = head.indexOf(0, position);
    if (end < 0) throw new UnpackSkip("CORRUPT", "a gzip header's name or comment does not end");
    position = end + 1;
  }
  if (flags & 2) position += 2;
  if (position > head.length) throw new UnpackSkip("CORRUPT", "a gzip header is cut short");
  return offset + position;
}

/** The content of every gzip member from the start; records where trailing data starts. */
async function* gzipMembers(
  source: ContainerSource,
  context: ExtractContext,
  state: { trailingAt: number },
): AsyncGenerator<Uint8Array> {
  let offset = 0;
  while (offset < source.size) {
    const body = await gzipBodyStart(source, offset, context.signal);
    if (body < 0) {
      if (offset === 0) throw new UnpackSkip("CORRUPT", "no gzip header");
      state.trailingAt = offset;
      return;
    }
    let crc = 0;
    let size = 0;
    const inflater = createInflateRaw({ chunkSize: decodedChunkBytes });
    for await (const chunk of decoded(streamFrom(source, body, context.signal), inflater)) {
      crc = crc32(chunk, crc);
      size += chunk.byteLength;
      yield chunk;
    }
    // The trailer sits right where the deflate stream ended (as gunzip reads it), never
    // searched for: content can hold a forged copy of its own CRC and size.
    const at = body + inflater.bytesWritten;
    const trailer = Buffer.from(await readRange(source, at, 8, context.signal));
    if (
      trailer.length < 8 ||
      trailer.readUInt32LE(0) !== crc ||
      trailer.readUInt32LE(4) !== size % 2 ** 32
    )
      throw new UnpackSkip(
        "CORRUPT",
        "a gzip member's trailer (CRC-32 and size) does not match its content",
      );
    offset = at + 8;
    // Zero bytes after a member are padding (gunzip passes over them).
    offset = await skipZeros(source, offset, context.signal);
  }
}

/** The first offset at or after `offset` that is not a zero byte (or the end). */
async function skipZeros(
  source: ContainerSource,
  offset: number,
  signal: AbortSignal,
): Promise<number> {
  let position = offset;
  for await (const chunk of streamFrom(source, offset, signal)) {
    const nonZero = chunk.findIndex((byte) => byte !== 0);
    if (nonZero >= 0) return position + nonZero;
    position += chunk.byteLength;
  }
  return position;
}

/**
 * brotli (RFC 7932): no magic number, so only tried when a name or type says `.br`. Bytes
 * after the end of the stream (which the decoder passes over) come out as `(trailing data)`.
 */
export const brotliExtractor: Extractor = {
  format: "brotli",
  async *entries(source, context): AsyncGenerator<ExtractedEntry> {
    const decoder = createBrotliDecompress({ chunkSize: decodedChunkBytes });
    let consumed = -1;
    yield {
      kind: "file",
      name: innerName(source, /\.br$/i),
      compressedSize: source.size,
      open: async function* () {
        yield* decoded(
          streamFrom(source, 0, context.signal),
          decoder as unknown as ReturnType<typeof createInflateRaw>,
        );
        consumed = decoder.bytesWritten;
      },
    };
    if (consumed > 0 && consumed < source.size)
      yield {
        kind: "file",
        name: "(trailing data)",
        compressedSize: source.size - consumed,
        hidden: true,
        open: () => streamFrom(source, consumed, context.signal),
      };
  },
};
