import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { finished } from "node:stream/promises";
import { artifactFromStream, type ScanResult } from "@engine/core";
import { decideType, typeHeadBytes } from "./content-type-policy.js";
import type { UploadedFile } from "./outcome.js";
import type { UploadProblemCode } from "./problems.js";
import { codeOfScanError, codeOfVerdict, perFileCodes } from "./refusal-codes.js";
import type { StorageFileInfo, StorageLocation, StorageWriter } from "./storage/storage-sink.js";
import type { ResolvedUploadGuardOptions } from "./upload-options.js";
import { UploadRefusal } from "./upload-refusal.js";

/** One file part as the multipart parser gives it. */
export interface FilePart {
  field: string;
  filename: string;
  declaredType: string;
  /** Its bytes; `truncated` is set when the parser cut it at the file size limit. */
  stream: Readable & { truncated?: boolean };
}

/** What the request the file is part of gives it. */
export interface InspectionContext {
  options: ResolvedUploadGuardOptions;
  /** Aborted when the request ends early (a limit, the deadline, the client gone, a refusal). */
  signal: AbortSignal;
  /** The request's absolute deadline (epoch ms), handed to the scanner. */
  deadline: number;
  /** True once the request is refused as a whole: later files are only drained. */
  refusing(): boolean;
  /** Refuses the request as a whole (aborts `signal` with the refusal; the first one wins). */
  refuse(code: UploadProblemCode, cause?: unknown): void;
}

/** A file inspected: its outcome, and the writer holding it until the request commits. */
export interface InspectedFile {
  file: UploadedFile;
  /** The storage writer of an accepted file (committed or discarded by the request). */
  writer?: StorageWriter | undefined;
}

/** Bytes gathered from the parser's pieces before they are written to storage and the scanner. */
const writeBytes = 64 * 1024;

/** Bytes of the pieces the scanner's feed is written in. */
const feedPieceBytes = 64 * 1024;

/** The request's refusal when its signal fired, else `code`'s. */
function refusalFrom(
  signal: AbortSignal,
  code: "upload-aborted" = "upload-aborted",
): UploadRefusal {
  return signal.reason instanceof UploadRefusal
    ? signal.reason
    : new UploadRefusal(code, { cause: signal.reason });
}

/** Writes `chunk`, waiting for `drain` when the stream asks to (its back-pressure). */
async function write(stream: Writable, chunk: Uint8Array, signal: AbortSignal): Promise<void> {
  if (stream.destroyed) throw new Error("the stream was closed before the file ended");
  if (!stream.write(chunk)) await once(stream, "drain", { signal });
}

/** A name safe to hand a scanner as the artifact's file name (data only: no path, no controls). */
function scanName(filename: string): string | undefined {
  const base = filename.split(/[\\/]/).pop() ?? "";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: controls are what is removed
  const clean = base.replace(/[\u0000-\u001f\u007f-\u009f]/g, "").slice(0, 255);
  return clean.length > 0 ? clean : undefined;
}

/** The part's next piece; a part that fails to read (the body cut, the client gone) refuses the upload. */
async function readPart(chunks: AsyncIterator<Uint8Array>): Promise<IteratorResult<Uint8Array>> {
  try {
    return await chunks.next();
  } catch (error) {
    throw new UploadRefusal("upload-aborted", { cause: error });
  }
}

/** Reads the first `typeHeadBytes` (or the whole file when shorter) off the iterator. */
async function readHead(
  chunks: AsyncIterator<Uint8Array>,
): Promise<{ head: Uint8Array[]; length: number; ended: boolean }> {
  const head: Uint8Array[] = [];
  let length = 0;
  while (length < typeHeadBytes) {
    const next = await readPart(chunks);
    if (next.done) return { head, length, ended: true };
    head.push(next.value);
    length += next.value.byteLength;
  }
  return { head, length, ended: false };
}

/** Reads what is left of a file without keeping it; returns its byte count. */
async function drain(chunks: AsyncIterator<Uint8Array>): Promise<number> {
  let length = 0;
  for (let next = await readPart(chunks); !next.done; next = await readPart(chunks))
    length += next.value.byteLength;
  return length;
}

/**
 * One file: its type decided from its first bytes, then its bytes written to storage and to
 * the scanner together (each one's back-pressure respected), then the verdict. Returns the
 * file accepted (its writer open for the request to commit) or refused for itself (a verdict,
 * its type); throws an {@link UploadRefusal} for what refuses the whole request (a limit, the
 * scanner failing, the deadline, the client gone), its writers discarded first.
 */
export async function inspectFile(
  part: FilePart,
  context: InspectionContext,
): Promise<InspectedFile> {
  const { options, signal } = context;
  const chunks = part.stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  const file: UploadedFile = {
    id: randomUUID(),
    field: part.field,
    filename: part.filename,
    declaredType: part.declaredType,
    type: "",
    size: 0,
    decision: "refused",
  };
  const { head, length, ended } = await readHead(chunks);
  const headBytes = Buffer.concat(head, length);
  const decision = await decideType(
    headBytes.subarray(0, typeHeadBytes),
    part.declaredType,
    options.allowedTypes,
  );
  file.type = decision.type;
  if (!decision.allowed || context.refusing()) {
    file.size = length + (ended ? 0 : await drain(chunks));
    checkTruncated(part, signal);
    return { file: { ...file, code: decision.allowed ? undefined : "type-not-allowed" } };
  }
  const info: StorageFileInfo = {
    id: file.id,
    field: file.field,
    filename: file.filename,
    type: file.type,
  };
  const writers = await openWriters(info, context);
  try {
    const scan = await scanWhileStoring(
      file,
      { head: headBytes, ended, chunks, part },
      writers,
      context,
    );
    return await decide(file, scan, writers, options);
  } catch (error) {
    await discardAll(writers);
    throw error;
  }
}

interface Writers {
  store: StorageWriter;
  quarantine?: StorageWriter | undefined;
  /** Set once the writers are being discarded: errors of their streams then mean nothing. */
  closing: boolean;
}

async function openWriters(info: StorageFileInfo, context: InspectionContext): Promise<Writers> {
  const { options } = context;
  let store: StorageWriter | undefined;
  try {
    store = await options.storage.open(info);
    const quarantine = options.quarantine ? await options.quarantine.open(info) : undefined;
    // A write that fails later (a full disk, a lost connection) refuses the request at once;
    // without a listener, the stream's 'error' would end the process. (What a stream says
    // while it is discarded is not a failure: the request is refused for its own reason.)
    const writers: Writers = { store, quarantine, closing: false };
    for (const writer of [store, quarantine])
      writer?.stream.on("error", (error) => {
        if (!writers.closing) context.refuse("storage-failed", error);
      });
    return writers;
  } catch (error) {
    await settledDiscard(store);
    throw new UploadRefusal("storage-failed", { cause: error });
  }
}

/** Discards, ignoring what a sink's discard throws (it must not replace the refusal). */
async function settledDiscard(writer: StorageWriter | undefined): Promise<void> {
  try {
    await writer?.discard();
  } catch {
    // A sink that fails to clean up is the sink's problem; the request is refused anyway.
  }
}

async function discardAll(writers: Writers): Promise<void> {
  writers.closing = true;
  await Promise.all([settledDiscard(writers.store), settledDiscard(writers.quarantine)]);
}

function checkTruncated(part: FilePart, signal: AbortSignal): void {
  if (signal.aborted) throw refusalFrom(signal);
  if (part.stream.truncated) throw new UploadRefusal("file-too-large");
}

/**
 * Feeds the file to the scanner and the writers at once; returns the scanner's answer (or its
 * error) once the whole file was fed. A scanner that answers before it read the whole file
 * gave a verdict on a prefix: that is never taken as benign.
 */
async function scanWhileStoring(
  file: UploadedFile,
  source: { head: Uint8Array; ended: boolean; chunks: AsyncIterator<Uint8Array>; part: FilePart },
  writers: Writers,
  context: InspectionContext,
): Promise<{ answer: ScanAnswer; whole: boolean }> {
  const { signal, deadline, options } = context;
  const feed = new PassThrough({ highWaterMark: 64 * 1024 });
  const fed = readToEnd(feed);
  const name = scanName(file.filename);
  const artifact = artifactFromStream(fed.chunks, {
    ...(name ? { filename: name } : {}),
    mimetype: file.type,
  });
  // Aborted once the scanner no longer reads: it answered, its stream closed, or the request
  // ended. One controller per file: waits for the feed's drain leave no listener behind.
  const feedStop = new AbortController();
  const stopFeeding = () => feedStop.abort();
  const scan = options.scanner.scan(artifact, { signal, deadline }).then(
    (result): ScanAnswer => ({ kind: "result", result }),
    (error: unknown): ScanAnswer => ({ kind: "error", error }),
  );
  let answeredEarly = false;
  void scan.finally(() => {
    if (!feed.writableEnded) answeredEarly = true;
    stopFeeding();
  });
  feed.once("close", stopFeeding);
  signal.addEventListener("abort", stopFeeding, { once: true });
  const feedChunk = async (chunk: Uint8Array) => {
    // In pieces of at most 64 KiB: what reads ahead for the scanner then holds at most a few
    // of them, so a scanner that stops early is seen to (see readToEnd).
    for (let at = 0; at < chunk.byteLength; at += feedPieceBytes) {
      if (feedStop.signal.aborted || feed.destroyed) return;
      if (!feed.write(chunk.subarray(at, at + feedPieceBytes)))
        await once(feed, "drain", { signal: feedStop.signal }).catch(() => undefined);
    }
  };
  const put = async (chunk: Uint8Array) => {
    file.size += chunk.byteLength;
    await Promise.all([
      write(writers.store.stream, chunk, signal),
      writers.quarantine && write(writers.quarantine.stream, chunk, signal),
      feedChunk(chunk),
    ]);
  };
  try {
    if (source.head.byteLength > 0) await put(source.head);
    // The parser hands a file over in pieces of a few KiB: they are gathered into writes of
    // 64 KiB (a write per piece cost more than the scan itself).
    let pending: Uint8Array[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (pendingBytes === 0) return;
      const chunk =
        pending.length === 1 ? (pending[0] as Uint8Array) : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await put(chunk);
    };
    if (!source.ended)
      for (
        let next = await readPart(source.chunks);
        !next.done;
        next = await readPart(source.chunks)
      ) {
        if (signal.aborted) break;
        pending.push(next.value);
        pendingBytes += next.value.byteLength;
        if (pendingBytes >= writeBytes) await flush();
      }
    if (!signal.aborted) await flush();
    checkTruncated(source.part, signal);
  } catch (error) {
    feed.destroy();
    if (signal.aborted) throw refusalFrom(signal);
    if (error instanceof UploadRefusal) throw error;
    throw new UploadRefusal("storage-failed", { cause: error });
  }
  feed.end();
  await Promise.all([
    endWriter(writers.store),
    writers.quarantine && endWriter(writers.quarantine),
  ]);
  const answer = await scan;
  signal.removeEventListener("abort", stopFeeding);
  if (signal.aborted) throw refusalFrom(signal);
  // A scanner that did not read the feed to its end answered for a prefix of the file.
  return { answer, whole: fed.whole && !answeredEarly };
}

/**
 * The feed as the scanner's artifact reads it, and whether it was read past its last byte
 * (the scanner, or what reads ahead for it, asked for more after the end). A scanner that
 * stops early leaves `whole` false: its verdict covers a prefix. (A read-ahead buffer may pull
 * a small file whole for a scanner that then looks at part of it: that is the scanner's
 * contract, which this cannot see into.)
 */
function readToEnd(feed: PassThrough): { chunks: AsyncIterable<Uint8Array>; whole: boolean } {
  const state = { whole: false, abandoned: false };
  feed.once("end", () => {
    if (!state.abandoned) state.whole = true;
  });
  // What reads the artifact destroys its source when it stops before the end.
  feed.once("close", () => {
    if (!feed.readableEnded) state.abandoned = true;
  });
  return {
    chunks: feed,
    get whole() {
      return state.whole && !state.abandoned;
    },
  };
}

/** What the scanner did: answered, or failed (with whatever it rejected with). */
type ScanAnswer = { kind: "result"; result: ScanResult } | { kind: "error"; error: unknown };

async function endWriter(writer: StorageWriter): Promise<void> {
  try {
    writer.stream.end();
    // finished() also settles for a stream that already failed (once("finish") would wait).
    await finished(writer.stream, { readable: false });
  } catch (error) {
    throw new UploadRefusal("storage-failed", { cause: error });
  }
}

/** The verdict (or the scanner's error) made into the file's decision. */
async function decide(
  file: UploadedFile,
  scan: { answer: ScanAnswer; whole: boolean },
  writers: Writers,
  options: ResolvedUploadGuardOptions,
): Promise<InspectedFile> {
  const { answer, whole } = scan;
  let code: UploadProblemCode | undefined;
  if (answer.kind === "error") {
    code = codeOfScanError(answer.error);
    if (!perFileCodes.has(code)) throw new UploadRefusal(code, { cause: answer.error });
  } else {
    file.scan = answer.result;
    code = codeOfVerdict(answer.result, options);
    // A verdict given before the whole file was read covers a prefix: never a pass.
    if (code === undefined && !whole) code = "not-inspectable";
  }
  if (code === undefined) {
    await settledDiscard(writers.quarantine);
    return { file: { ...file, decision: "accepted" }, writer: writers.store };
  }
  writers.closing = true;
  await settledDiscard(writers.store);
  let quarantined: StorageLocation | undefined;
  try {
    quarantined = await writers.quarantine?.commit();
  } catch (error) {
    await settledDiscard(writers.quarantine);
    throw new UploadRefusal("storage-failed", { cause: error });
  }
  return { file: { ...file, decision: "refused", code, ...(quarantined ? { quarantined } : {}) } };
}
