import { Worker } from "node:worker_threads";
import { errorFromSignal } from "@engine/core";
import type { CfbJob, CfbReply } from "./cfb-worker.js";
import { type CfbLibrary, type CompoundStream, readCompoundFile } from "./compound-file-guard.js";
import {
  type ContainerSource,
  type ExtractContext,
  type ExtractedEntry,
  type Extractor,
  UnpackSkip,
} from "./extractor.js";
import { IdleWorkers } from "./idle-workers.js";
import { lazyLibrary } from "./library-loading.js";
import { isEncryptedPackage, legacyEncryptedStreams } from "./office-encryption.js";
import { paced, vbaDecompressedChunks } from "./vba-decompression.js";
import { VbaDirReader, type VbaModuleListing } from "./vba-project.js";

/** cfb, loaded at the first compound file read on the event loop. */
const cfbLibrary = lazyLibrary<CfbLibrary>("cfb", async () => (await import("cfb")).default);

/** Bytes handed to the walker at a time. */
const sliceBytes = 256 * 1024;

/**
 * Compound files up to this size are read by cfb on the event loop (cfb and its guard take
 * ~10 ms a MiB, about one of the walk's turns); larger ones in a worker thread, terminated at
 * the deadline (a 100 MiB file held the event loop 0.7-1.2 s).
 */
const mainThreadFileBytes = 1024 * 1024;
/**
 * Bytes cfb may copy following the chains of a file read on the event loop: a small file
 * whose chains would make it copy more (chains walked from their middle are copied again) is
 * read in the worker, within the whole bound.
 */
const mainThreadCopyBytes = 4 * 1024 * 1024;

/** The worker script: next to this module in `dist/`; tests running from `src/` use the build. */
const workerUrl = new URL(
  import.meta.url.endsWith(".ts") ? "../../dist/cfb-worker.js" : "./cfb-worker.js",
  import.meta.url,
);
/** JavaScript heap of a cfb worker, in MiB (cfb's sector views and directory; contents are apart). */
const workerHeapMegabytes = 256;
/** cfb workers kept between files at most, and how long one is kept idle (ms). */
const idleWorkersKept = 2;
const idleWorkerMs = 30_000;

const idleWorkers = new IdleWorkers(idleWorkersKept, idleWorkerMs);

/** A cfb worker: one kept from an earlier file (a new one takes ~50 ms to start), else a new one. */
function takeWorker(): Worker {
  const idle = idleWorkers.take();
  if (idle) {
    idle.ref();
    return idle;
  }
  const worker = new Worker(workerUrl, {
    resourceLimits: { maxOldGenerationSizeMb: workerHeapMegabytes, maxYoungGenerationSizeMb: 32 },
  });
  // Each job listens for errors too; this one keeps an error nobody awaits from being thrown.
  worker.on("error", () => {});
  return worker;
}

/**
 * The streams of a compound file read by cfb in a worker thread: the worker is terminated
 * when `signal` fires (the deadline, the caller's abort: its error is thrown at once), or
 * when it fails (out of its heap: `LIMITS`).
 */
function readInWorker(job: CfbJob, signal: AbortSignal): Promise<CompoundStream[]> {
  if (signal.aborted) return Promise.reject(errorFromSignal(signal, "unpack"));
  const worker = takeWorker();
  return new Promise<CompoundStream[]>((resolve, reject) => {
    const stopListening = () => {
      signal.removeEventListener("abort", onAbort);
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
    };
    const fail = (error: unknown) => {
      stopListening();
      void worker.terminate();
      reject(error);
    };
    const onAbort = () => fail(errorFromSignal(signal, "unpack"));
    const onError = (error: Error & { code?: string }) =>
      fail(
        error.code === "ERR_WORKER_OUT_OF_MEMORY"
          ? new UnpackSkip(
              "LIMITS",
              `cfb ran out of its worker's ${workerHeapMegabytes} MiB of JavaScript heap`,
            )
          : new UnpackSkip("CORRUPT", `the cfb worker failed: ${error.message}`),
      );
    const onExit = (code: number) =>
      fail(
        new UnpackSkip("CORRUPT", `the cfb worker stopped before it was done (exit code ${code})`),
      );
    const onMessage = (reply: CfbReply) => {
      stopListening();
      idleWorkers.keep(worker);
      if (reply.type === "skip") reject(new UnpackSkip(reply.code, reply.message, reply.limit));
      else if (reply.type === "error")
        reject(new UnpackSkip("CORRUPT", `cfb could not read the compound file: ${reply.message}`));
      else
        resolve(
          reply.streams.map(({ path, buffer, offset, length, declaredSize }) => ({
            path,
            content: new Uint8Array(reply.buffers[buffer] as ArrayBuffer, offset, length),
            declaredSize,
          })),
        );
    };
    signal.addEventListener("abort", onAbort, { once: true });
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
    try {
      worker.postMessage(job);
    } catch (error) {
      fail(error);
    }
  });
}

/** Bytes copied at a time into the memory a worker shares. */
const copySliceBytes = 1024 * 1024;

/**
 * A copy of `bytes` in shared memory (a worker reads it where it is), made a slice at a time
 * without holding the event loop: copying 100 MiB at once held it ~0.26 s.
 */
async function sharedCopy(bytes: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
  const copy = new Uint8Array(new SharedArrayBuffer(bytes.byteLength));
  function* copySlices(): Generator<number> {
    for (let at = 0; at < bytes.byteLength; at += copySliceBytes) {
      copy.set(bytes.subarray(at, at + copySliceBytes), at);
      yield at;
    }
  }
  for await (const _ of paced(copySlices(), signal));
  return copy;
}

/** `bytes` in slices (views, no copy). */
async function* slices(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += sliceBytes)
    yield bytes.subarray(at, Math.min(at + sliceBytes, bytes.byteLength));
}

/**
 * The compound file read by cfb, once checked to be safe for it; its streams in order. A file
 * of up to {@link mainThreadFileBytes} is read here, a larger one in a worker thread (from its
 * path when it has one, else a copy of its bytes in shared memory).
 */
async function readStreams(
  source: ContainerSource,
  context: ExtractContext,
): Promise<CompoundStream[]> {
  const { signal } = context;
  const { maxMemberBytes } = context.limits;
  if (source.size > maxMemberBytes)
    throw new UnpackSkip(
      "LIMITS",
      `a compound file of ${source.size} bytes, more than maxMemberBytes (${maxMemberBytes} bytes): cfb reads it whole`,
      "maxMemberBytes",
    );
  // cfb's copies of the sector chains: about the file's size; refused past twice the bound.
  const maxCopiedBytes = 2 * maxMemberBytes;
  const inWorker = async (file: { bytes: Uint8Array } | { path: string }) =>
    readInWorker(
      {
        file: "path" in file ? file : { bytes: await sharedCopy(file.bytes, signal) },
        maxBytes: maxMemberBytes,
        maxCopiedBytes,
      },
      signal,
    );
  if (source.size > mainThreadFileBytes && source.artifact.path !== undefined)
    return inWorker({ path: source.artifact.path });
  const bytes = await source.artifact.bytes({ signal });
  if (bytes.byteLength > mainThreadFileBytes) return inWorker({ bytes });
  try {
    return readCompoundFile(
      await cfbLibrary(),
      bytes,
      Math.min(maxCopiedBytes, mainThreadCopyBytes),
    );
  } catch (error) {
    const copiesMore =
      error instanceof UnpackSkip &&
      error.limit === "maxMemberBytes" &&
      maxCopiedBytes > mainThreadCopyBytes;
    if (!copiesMore) throw error;
    return inWorker({ bytes });
  }
}

/** The storages holding a VBA project: each `VBA` storage with a `dir` stream. */
function vbaStorages(streams: readonly CompoundStream[]): string[] {
  return streams
    .map((stream) => stream.path)
    .filter((path) => /(^|\/)vba\/dir$/i.test(path))
    .map((path) => path.slice(0, -"/dir".length));
}

/**
 * The modules a VBA project's `dir` stream lists, at most `maxMembers`: decompressed only as
 * far as needed (to its end record, or to the module past `maxMembers`), giving the event loop
 * a turn every few ms and stopping at the deadline. The `dir` streams of one compound file are
 * read, not stored: together they count as one member, their bytes bounded (`LIMITS`) by
 * `maxMemberBytes` and by what is left of `maxTotalBytes` (`dirBytes.read` counts them).
 */
async function vbaDirModules(
  dir: Uint8Array,
  context: ExtractContext,
  dirBytes: { read: number },
): Promise<VbaModuleListing> {
  const { maxMembers, maxMemberBytes } = context.limits;
  const memberLeft = maxMemberBytes - dirBytes.read;
  const totalLeft = context.remainingBytes();
  const [maxBytes, limit] =
    totalLeft < memberLeft
      ? [Math.max(0, totalLeft), "maxTotalBytes" as const]
      : [Math.max(0, memberLeft), "maxMemberBytes" as const];
  const reader = new VbaDirReader(maxMembers);
  let read = 0;
  for await (const chunk of paced(vbaDecompressedChunks(dir), context.signal)) {
    read += chunk.byteLength;
    dirBytes.read += chunk.byteLength;
    if (read > maxBytes)
      throw new UnpackSkip(
        "LIMITS",
        limit === "maxMemberBytes"
          ? `the VBA dir streams decompress to more than maxMemberBytes (${maxMemberBytes} bytes)`
          : `the VBA dir streams decompress to more than the ${maxBytes} bytes left of maxTotalBytes`,
        limit,
      );
    if (reader.push(chunk)) break;
  }
  return reader.end();
}

/**
 * The source code of every module of the VBA project in `storage` (`Macros/VBA`,
 * `_VBA_PROJECT_CUR/VBA`, `VBA` in a vbaProject.bin): the `dir` stream lists each module's
 * stream and where its compressed source starts ({@link vbaDirModules}: at most `maxMembers`
 * modules, more are a `LIMITS` skip of the `dir` stream); each source comes out decompressed
 * chunk by chunk as `<storage>/<module>.bas` (or `.cls`), in the project's code page, without
 * holding the event loop. A module that cannot be found or read is skipped `CORRUPT`.
 */
async function* vbaSources(
  storage: string,
  byPath: ReadonlyMap<string, Uint8Array>,
  context: ExtractContext,
  dirBytes: { read: number },
): AsyncGenerator<ExtractedEntry> {
  const dir = byPath.get(`${storage}/dir`.toLowerCase()) ?? new Uint8Array(0);
  let listing: VbaModuleListing;
  try {
    listing = await vbaDirModules(dir, context, dirBytes);
  } catch (error) {
    if (!(error instanceof UnpackSkip)) throw error;
    yield {
      kind: "skipped",
      name: `${storage}/dir`,
      code: error.code,
      reason: error.message,
      limit: error.limit,
    };
    return;
  }
  if (listing.more) {
    const { maxMembers } = context.limits;
    yield {
      kind: "skipped",
      name: `${storage}/dir`,
      code: "LIMITS",
      reason: `the VBA project lists more than maxMembers (${maxMembers}) modules: the first ${maxMembers} are read`,
      limit: "maxMembers",
    };
  }
  for (const module of listing.modules) {
    const name = `${storage}/${module.name}.${module.kind === "document" ? "cls" : "bas"}`;
    const stream = byPath.get(`${storage}/${module.streamName}`.toLowerCase());
    if (!stream || module.sourceOffset >= stream.byteLength) {
      yield {
        kind: "skipped",
        name,
        code: "CORRUPT",
        reason: stream
          ? `the VBA module's source offset (${module.sourceOffset}) is past its stream's ${stream.byteLength} bytes`
          : `the VBA module's stream ${module.streamName} is not in the compound file`,
      };
      continue;
    }
    const compressed = stream.subarray(module.sourceOffset);
    yield {
      kind: "file",
      name,
      compressedSize: compressed.byteLength,
      method: "ms-ovba",
      open: () => batched(paced(vbaDecompressedChunks(compressed), context.signal)),
    };
  }
}

/** Chunks gathered into slices of about 64 KiB. */
async function* batched(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  for await (const chunk of chunks) {
    held.push(chunk);
    heldBytes += chunk.byteLength;
    if (heldBytes >= 64 * 1024) {
      yield Buffer.concat(held, heldBytes);
      held = [];
      heldBytes = 0;
    }
  }
  if (heldBytes > 0) yield Buffer.concat(held, heldBytes);
}

/**
 * OLE/Compound File Binary (.doc, .xls, .ppt, .msi, .msg, vbaProject.bin), read with cfb once
 * its structure is checked to be safe for it (`compound-file-guard.ts`) and within
 * `maxMemberBytes` (cfb reads a file whole), in a worker thread past
 * {@link mainThreadFileBytes}. Entries: the source code of each VBA module (method `ms-ovba`:
 * decompressed, at most `maxMembers` modules a project), then every stream by its path (method
 * `stored`).
 * Encrypted OOXML (an EncryptedPackage stream, IRM's DRMContent) is `ENCRYPTED` as a whole; a
 * legacy document's encrypted streams (Word's FIB flag, Excel's FILEPASS, PowerPoint's Current
 * User) are skipped `ENCRYPTED` one by one, its macros still read.
 */
export const cfbExtractor: Extractor = {
  format: "cfb",
  async *entries(source, context): AsyncGenerator<ExtractedEntry> {
    const streams = await readStreams(source, context);
    const byPath = new Map(streams.map((stream) => [stream.path.toLowerCase(), stream.content]));
    if (isEncryptedPackage(byPath))
      throw new UnpackSkip(
        "ENCRYPTED",
        "an encrypted Office document (OOXML in an EncryptedPackage stream, or IRM-protected)",
      );
    const dirBytes = { read: 0 };
    for (const storage of vbaStorages(streams))
      yield* vbaSources(storage, byPath, context, dirBytes);
    const encrypted = legacyEncryptedStreams(byPath);
    for (const stream of streams) {
      const reason = encrypted.get(stream.path.toLowerCase());
      if (reason) {
        yield { kind: "skipped", name: stream.path, code: "ENCRYPTED", reason };
        continue;
      }
      const { content } = stream;
      yield {
        kind: "file",
        name: stream.path,
        compressedSize: content.byteLength,
        method: "stored",
        open: () => slices(content),
      };
      if (content.byteLength < stream.declaredSize)
        yield {
          kind: "skipped",
          name: stream.path,
          code: "CORRUPT",
          reason: `the stream has ${content.byteLength} of its ${stream.declaredSize} bytes`,
        };
    }
  },
};
