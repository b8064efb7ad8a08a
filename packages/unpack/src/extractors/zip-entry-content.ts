import { Readable } from "node:stream";
import { createInflateRaw } from "node:zlib";
import type { FileEntry } from "@zip.js/zip.js";
import { decodedChunkBytes } from "./source-reading.js";
import type { ZipSourceAccess } from "./zip-source-access.js";

/**
 * What reading an entry's content found, filled in as it is read and looked at once the
 * walker read it. Nothing here limits the content: the member store counts its bytes.
 */
export interface ContentOutcome {
  /** Bytes of the container the data took (deflate: up to the end of its stream). */
  consumed?: number;
  /**
   * Why the content ended before its end (cut short, undecodable data): what came out before
   * it is still scanned, and the entry is then reported `CORRUPT`.
   */
  problem?: string;
}

/** The message of an error, for a reason. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errors that end the walk (its deadline, the caller's abort): never taken for corrupt data. */
function rethrowIfStopped(error: unknown, signal: AbortSignal): void {
  if (signal.aborted) throw error;
}

/**
 * A stored entry's `length` bytes from `start`, as they are in the container; a zip cut short
 * before their end gives what is there and the problem.
 */
export async function* storedContent(
  access: ZipSourceAccess,
  start: number,
  length: number,
  outcome: ContentOutcome,
): AsyncGenerator<Uint8Array> {
  let read = 0;
  for await (const chunk of access.chunks(start, start + length)) {
    read += chunk.byteLength;
    yield chunk;
  }
  outcome.consumed = read;
  if (read < length)
    outcome.problem = `its data is cut short: ${read} of its ${length} bytes are in the zip`;
}

/**
 * A deflated entry inflated from `start` to the end of its deflate stream, whatever sizes it
 * declares (a declared size is never trusted, nor a buffer allocated from it), with
 * back-pressure (a bomb inflates no faster than the store counts it).
 */
export async function* inflatedContent(
  access: ZipSourceAccess,
  start: number,
  outcome: ContentOutcome,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const inflater = createInflateRaw({ chunkSize: decodedChunkBytes });
  const input = Readable.from(access.chunks(start));
  input.on("error", (error) => inflater.destroy(error));
  input.pipe(inflater);
  try {
    for await (const chunk of inflater) yield chunk as Buffer;
    outcome.consumed = inflater.bytesWritten;
  } catch (error) {
    rethrowIfStopped(error, signal);
    outcome.problem = `its deflate data does not decode: ${messageOf(error)}`;
  } finally {
    input.unpipe(inflater);
    input.destroy();
    inflater.destroy();
  }
}

/**
 * An entry decoded by zip.js (deflate64), written to a stream read with back-pressure. zip.js
 * stops at the declared size with an error: what came out before is still scanned.
 */
export async function* zipJsContent(
  entry: FileEntry,
  outcome: ContentOutcome,
  signal: AbortSignal,
): AsyncGenerator<Uint8Array> {
  const stop = new AbortController();
  const stopAll = AbortSignal.any([signal, stop.signal]);
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const written = entry
    .getData(writable, {
      signal: stopAll,
      useWebWorkers: false,
      checkOverlappingEntry: false,
      checkSignature: false,
      strictness: "tolerant",
    })
    .then(
      () => undefined,
      (error: unknown) => error,
    );
  const reader = readable.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield value;
    }
    const failure = await written;
    if (failure) outcome.problem = `zip.js could not decode it: ${messageOf(failure)}`;
    else outcome.consumed = entry.compressedSize;
  } catch (error) {
    rethrowIfStopped(error, signal);
    outcome.problem = `zip.js could not decode it: ${messageOf(error)}`;
  } finally {
    stop.abort();
    await reader.cancel().catch(() => {});
    await written;
  }
}
