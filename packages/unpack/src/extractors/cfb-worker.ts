// Worker thread: reads compound files with cfb (after checkCompoundFile), one at a time, off
// the event loop: both are synchronous, ~10 ms a MiB, over a second for a 100 MiB file. The
// extractor (cfb-extractor.ts) gives it a file (its bytes, or its path), gets every stream
// back in one transferred buffer, terminates the thread at the deadline, and keeps it for the
// next file once a job ended.
import { readFileSync, statSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import cfb from "cfb";
import { type CompoundStream, readCompoundFile } from "./compound-file-guard.js";
import { type LimitName, type SkipCode, UnpackSkip } from "./extractor.js";

/** One compound file for the worker. */
export interface CfbJob {
  /** The file: its bytes (a copy in shared memory), or the path of a file read here. */
  file: { bytes: Uint8Array } | { path: string };
  /** Bytes the file may have (`maxMemberBytes`: cfb reads it whole). */
  maxBytes: number;
  /** Bytes cfb may copy following the file's chains (see `checkCompoundFile`). */
  maxCopiedBytes: number;
}

/** A stream of the file: its content is `length` bytes at `offset` of the reply's `buffers[buffer]`. */
export interface CfbStreamSlice {
  path: string;
  buffer: number;
  offset: number;
  length: number;
  declaredSize: number;
}

/** The worker's answer to a job. */
export type CfbReply =
  | { type: "streams"; buffers: ArrayBuffer[]; streams: CfbStreamSlice[] }
  | { type: "skip"; code: SkipCode; message: string; limit?: LimitName | undefined }
  | { type: "error"; message: string };

const port = parentPort;
if (!port) throw new Error("@engine/unpack: cfb-worker.js must run in a worker thread");

/** The file of `job`, read here when given by path (refused past `maxBytes`). */
function fileOf(job: CfbJob): Uint8Array {
  if ("bytes" in job.file) return job.file.bytes;
  const tooLarge = (size: number) =>
    new UnpackSkip(
      "LIMITS",
      `a compound file of ${size} bytes, more than maxMemberBytes (${job.maxBytes} bytes): cfb reads it whole`,
      "maxMemberBytes",
    );
  const { size } = statSync(job.file.path);
  if (size > job.maxBytes) throw tooLarge(size);
  const bytes = readFileSync(job.file.path);
  if (bytes.byteLength > job.maxBytes) throw tooLarge(bytes.byteLength);
  return bytes;
}

/**
 * The contents of `streams` as buffers to transfer: a content that has its own buffer is
 * transferred as it is (no copy); the others (views of the file or of Node's buffer pool,
 * which cannot be transferred) are copied into one more buffer.
 */
function packed(streams: readonly CompoundStream[]): {
  buffers: ArrayBuffer[];
  slices: CfbStreamSlice[];
} {
  const buffers: ArrayBuffer[] = [];
  const owned = (content: Uint8Array): content is Uint8Array<ArrayBuffer> =>
    content.buffer instanceof ArrayBuffer &&
    content.byteOffset === 0 &&
    content.byteLength === content.buffer.byteLength &&
    content.byteLength > 0 &&
    !buffers.includes(content.buffer);
  const copied = new Uint8Array(
    streams.reduce((sum, { content }) => sum + (owned(content) ? 0 : content.byteLength), 0),
  );
  let offset = 0;
  const slices = streams.map(({ path, content, declaredSize }) => {
    const { byteLength: length } = content;
    if (owned(content)) {
      buffers.push(content.buffer);
      return { path, buffer: buffers.length - 1, offset: 0, length, declaredSize };
    }
    copied.set(content, offset);
    offset += length;
    return { path, buffer: -1, offset: offset - length, length, declaredSize };
  });
  buffers.push(copied.buffer);
  for (const slice of slices) if (slice.buffer === -1) slice.buffer = buffers.length - 1;
  return { buffers, slices };
}

function run(job: CfbJob): { reply: CfbReply; transfer: ArrayBuffer[] } {
  try {
    const { buffers, slices } = packed(readCompoundFile(cfb, fileOf(job), job.maxCopiedBytes));
    return { reply: { type: "streams", buffers, streams: slices }, transfer: buffers };
  } catch (error) {
    if (error instanceof UnpackSkip)
      return {
        reply: { type: "skip", code: error.code, message: error.message, limit: error.limit },
        transfer: [],
      };
    return {
      reply: { type: "error", message: (error as Error)?.message ?? String(error) },
      transfer: [],
    };
  }
}

port.on("message", (job: CfbJob) => {
  const { reply, transfer } = run(job);
  port.postMessage(reply, transfer);
});
