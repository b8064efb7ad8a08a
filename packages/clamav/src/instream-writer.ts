import { type Artifact, ArtifactUnavailableError } from "@engine/core";
import type { ClamdConnection } from "./clamd-connection.js";
import { clamdTooLarge } from "./clamd-errors.js";
import { endOfStreamFrame, instreamChunks, instreamFrames } from "./instream-framing.js";

const instreamCommand = Buffer.from("zINSTREAM\0");

/**
 * The artifact's content as bytes, or a typed error: a custom artifact whose stream yields
 * strings or objects would otherwise be sent as nothing, and clamd would answer OK for it.
 */
function asBytes(data: unknown): Uint8Array {
  if (data instanceof Uint8Array) return data;
  throw new ArtifactUnavailableError({
    message: `@engine/clamav: the artifact gave ${typeof data === "string" ? "a string" : typeof data} instead of bytes; it was not scanned`,
    hint: "An artifact's bytes() and stream() must give Uint8Array/Buffer chunks (a stream without setEncoding, not in object mode).",
  });
}

/** How far an `INSTREAM` upload got: what the client's failure mapping needs to know. */
export interface InstreamProgress {
  /** The command was (being) written. */
  started: boolean;
  /** The end frame was written: clamd has the whole artifact. */
  finishedSending: boolean;
  /** Body bytes handed to the socket. */
  bytesSent: number;
}

/** What an upload is bounded by (bytes, milliseconds; see `ClamdClientOptions`). */
export interface InstreamLimits {
  chunkBytes: number;
  maxStreamBytes: number;
  readTimeoutMs: number;
}

/**
 * Writes `zINSTREAM`, the artifact in chunks of at most `chunkBytes` and the end frame to a
 * session's connection, with back-pressure. An artifact that fits in one chunk (most uploads)
 * goes out in a single write; a larger one is streamed and never held whole. Stops sending
 * when clamd answers early (its size-limit refusal), and throws `ArtifactTooLargeError` before
 * passing `maxStreamBytes`. The reply is the caller's to read.
 *
 * @param small the whole content when the caller has already read it
 * @param size the artifact's size in bytes, when known
 */
export async function writeInstream(
  connection: ClamdConnection,
  artifact: Artifact,
  { size, small }: { size: number | undefined; small?: Uint8Array | undefined },
  limits: InstreamLimits,
  signal: AbortSignal,
  progress: InstreamProgress,
): Promise<void> {
  const { chunkBytes, maxStreamBytes, readTimeoutMs } = limits;
  progress.started = true;
  if (size !== undefined && size <= chunkBytes) {
    const body = asBytes(small ?? (await artifact.bytes({ signal, maxBytes: maxStreamBytes })));
    if (body.byteLength <= chunkBytes) {
      progress.bytesSent = body.byteLength;
      const upload = [instreamCommand, ...instreamFrames(body, chunkBytes), endOfStreamFrame];
      await connection.write(Buffer.concat(upload), readTimeoutMs);
      progress.finishedSending = true;
      return;
    }
  }
  await connection.write(instreamCommand, readTimeoutMs);
  const stream = artifact.stream({ signal });
  // A dead clamd must end the upload even while we wait for the artifact's next chunk.
  const unsubscribe = connection.onFailure((failure) => stream.destroy(failure));
  try {
    for await (const data of stream) {
      for (const [header, body] of instreamChunks(asBytes(data), chunkBytes)) {
        if (progress.bytesSent + body.byteLength > maxStreamBytes)
          throw clamdTooLarge(maxStreamBytes, undefined, progress.bytesSent + body.byteLength);
        const pending = connection.writeAll([header, body], readTimeoutMs);
        progress.bytesSent += body.byteLength;
        if (pending) await pending;
      }
      if (connection.hasQueuedReply) break; // clamd answered early (size limit): stop sending
    }
    await connection.write(endOfStreamFrame, readTimeoutMs);
    progress.finishedSending = true;
  } finally {
    unsubscribe();
  }
}
