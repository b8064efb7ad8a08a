import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { type Artifact, artifactFromStream } from "@engine/core";

/** Bytes of an artifact's head its type is read from (what `file-type` needs at most). */
export const contentTypeHeadBytes = 4100;

type FileTypeModule = typeof import("file-type");

/** `file-type` (ESM only), imported once on first use so that the CommonJS build loads too. */
let fileTypeModule: Promise<FileTypeModule> | undefined;

/**
 * The MIME type of `head` by its content (magic bytes, via `file-type`), or `""` when it is
 * not recognised. A declared type is never consulted: a name or a header can lie, bytes less so.
 */
export async function contentTypeOf(head: Uint8Array): Promise<string> {
  if (head.byteLength === 0) return "";
  fileTypeModule ??= import("file-type");
  const { fileTypeFromBuffer } = await fileTypeModule;
  return (await fileTypeFromBuffer(head))?.mime ?? "";
}

/**
 * The first `contentTypeHeadBytes` of a local file (fewer when it is shorter). Opened without
 * blocking, and only a regular file is read (a FIFO swapped in must never hold a thread).
 */
async function fileHead(path: string): Promise<Uint8Array> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    if (!(await handle.stat()).isFile()) return new Uint8Array(0);
    const buffer = Buffer.alloc(contentTypeHeadBytes);
    const { bytesRead } = await handle.read(buffer, 0, contentTypeHeadBytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * A stream artifact (readable once) split into its head and an artifact that yields the head
 * again, then the rest of the stream: the head is read off the stream once, never twice.
 */
async function streamHead(
  artifact: Artifact,
  signal: AbortSignal,
): Promise<{ head: Uint8Array; artifact: Artifact }> {
  const chunks = artifact.stream({ signal })[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  const read: Uint8Array[] = [];
  let length = 0;
  let done = false;
  while (length < contentTypeHeadBytes) {
    const next = await chunks.next();
    if (next.done) {
      done = true;
      break;
    }
    read.push(next.value);
    length += next.value.byteLength;
  }
  async function* replay(): AsyncGenerator<Uint8Array> {
    try {
      yield* read;
      if (done) return;
      for (let next = await chunks.next(); !next.done; next = await chunks.next()) yield next.value;
    } finally {
      await chunks.return?.();
    }
  }
  const info = {
    ...(artifact.filename ? { filename: artifact.filename } : {}),
    ...(artifact.mimetype ? { mimetype: artifact.mimetype } : {}),
    ...(artifact.sha256 ? { sha256: artifact.sha256 } : {}),
    ...(artifact.size !== undefined ? { size: artifact.size } : {}),
  };
  const head = Buffer.concat(read).subarray(0, contentTypeHeadBytes);
  return { head, artifact: artifactFromStream(replay(), info) };
}

/**
 * The type of an artifact by its content (see {@link contentTypeOf}), reading its head once:
 * from the file when it has a path, from the bytes in memory, or off a stream, in which case
 * the artifact returned replays the head before the rest (scan that one, not the original).
 * A head that cannot be read is typed `""`; the scan then meets the problem itself.
 */
export async function withContentType(
  artifact: Artifact,
  signal: AbortSignal,
): Promise<{ artifact: Artifact; filetype: string }> {
  if (!artifact.replayable) {
    const split = await streamHead(artifact, signal);
    return { artifact: split.artifact, filetype: await contentTypeOf(split.head) };
  }
  let head: Uint8Array;
  try {
    head =
      artifact.path !== undefined
        ? await fileHead(artifact.path)
        : (await artifact.bytes({ signal })).subarray(0, contentTypeHeadBytes);
  } catch {
    return { artifact, filetype: "" };
  }
  return { artifact, filetype: await contentTypeOf(head) };
}
