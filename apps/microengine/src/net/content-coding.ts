import { Duplex, pipeline, Readable, Transform, type TransformCallback } from "node:stream";
import {
  constants,
  createBrotliDecompress,
  createGunzip,
  createInflate,
  createInflateRaw,
} from "node:zlib";
import { ArtifactTooLargeError, ArtifactUnavailableError } from "@engine/core";

/** The content codings an artifact may arrive in (RFC 9110), as WHATWG fetch decodes them. */
export const supportedContentCodings = ["gzip", "x-gzip", "deflate", "br"] as const;

/** Ends a decoder's input leniently, as browsers do: a body cut after its last block still decodes. */
const lenient = { flush: constants.Z_SYNC_FLUSH, finishFlush: constants.Z_SYNC_FLUSH };

/**
 * `deflate` as HTTP clients read it: zlib-wrapped (RFC 9110), or raw deflate from servers that
 * send it bare (WHATWG fetch, as undici implements it, tells them apart by the first byte).
 */
function inflateEither(): Duplex {
  return Duplex.from(async function* (source: AsyncIterable<Buffer>) {
    const chunks = source[Symbol.asyncIterator]();
    let first = await chunks.next();
    while (!first.done && first.value.length === 0) first = await chunks.next();
    if (first.done) return;
    const head = first.value;
    const inflater =
      ((head[0] ?? 0) & 0x0f) === 0x08 ? createInflate(lenient) : createInflateRaw(lenient);
    const input = Readable.from(
      (async function* () {
        yield head;
        for (let next = await chunks.next(); !next.done; next = await chunks.next())
          yield next.value;
      })(),
    );
    // Errors of either side end the iteration below with that error; the output is read with
    // back-pressure, so a bomb inflates no faster than the caller's cap reads it.
    yield* pipeline(input, inflater, () => {});
  });
}

/** Counts the bytes that pass and fails past `maxBytes` (the encoded body of an artifact). */
class EncodedBytesLimit extends Transform {
  #bytes = 0;
  constructor(private readonly maxBytes: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    if (this.#bytes > this.maxBytes) {
      callback(
        new ArtifactTooLargeError({
          message: `@engine/microengine: the encoded artifact is larger than ARTIFACT_MAX_BYTES (${this.maxBytes} bytes)`,
          publicMessage: `the artifact is larger than ARTIFACT_MAX_BYTES (${this.maxBytes} bytes)`,
        }),
      );
      return;
    }
    callback(null, chunk);
  }
}

/** A decoder for one coding, or undefined when it is not one we decode. */
function decoderFor(coding: string): Duplex | undefined {
  switch (coding) {
    case "gzip":
    case "x-gzip":
      return createGunzip(lenient);
    case "deflate":
      return inflateEither();
    case "br":
      return createBrotliDecompress({
        flush: constants.BROTLI_OPERATION_FLUSH,
        finishFlush: constants.BROTLI_OPERATION_FLUSH,
      });
    default:
      return undefined;
  }
}

/**
 * The transforms that turn a response body sent with `Content-Encoding: header` into the
 * artifact itself, in the order to apply them (the last coding applied is undone first), after
 * a limit of `maxBytes` on the encoded bytes; the decoded bytes are capped by the caller (a
 * small body can inflate to gigabytes). Empty for no coding or `identity`. Throws
 * `ArtifactUnavailableError` for a coding it does not decode (`compress`, `zstd`, a typo):
 * an artifact the engine cannot read the way every client reads it is refused, never scanned
 * as its encoded bytes.
 */
export function contentDecoders(header: string | string[] | undefined, maxBytes: number): Duplex[] {
  const codings = (Array.isArray(header) ? header.join(",") : (header ?? ""))
    .split(",")
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding.length > 0 && coding !== "identity");
  if (codings.length === 0) return [];
  if (codings.length > 4)
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: the artifact server applied ${codings.length} content codings`,
      publicMessage: "the artifact server applied too many content codings",
    });
  const decoders = codings.reverse().map((coding) => {
    const decoder = decoderFor(coding);
    if (!decoder)
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: the artifact server sent Content-Encoding ${JSON.stringify(coding.slice(0, 32))}, which the engine does not decode`,
        hint: `Serve artifacts as they are, or with one of ${supportedContentCodings.join(", ")}.`,
        publicMessage: "the artifact's content coding is not supported",
      });
    return decoder;
  });
  return [new EncodedBytesLimit(maxBytes), ...decoders];
}
