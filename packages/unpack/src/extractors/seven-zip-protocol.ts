// What the 7-Zip worker thread (seven-zip-worker.ts) and the extractor (seven-zip-run.ts) say
// to each other: the worker's input, its events in order, and the shared control words.
import type { LimitName, SkipCode } from "./extractor.js";

/** The containers decoded with 7-Zip (`zip` for entries whose method zip.js lacks). */
export type SevenZipFormat =
  | "7z"
  | "rar"
  | "iso"
  | "cab"
  | "xz"
  | "bzip2"
  | "lzma"
  | "lzip"
  | "zip";

/** 7-Zip's compiled WebAssembly module: opaque here (@types/node does not declare its type). */
export type CompiledSevenZip = object;

/** One part of a file the worker shows 7-Zip: bytes given, or a range of the container. */
export type InputSegment = { bytes: Uint8Array } | { from: number; length: number };

/** An lzip member's trailer facts, checked against what 7-Zip decodes (CRC-32 and size). */
export interface LzipMemberCheck {
  /** Decoded bytes of the member. */
  dataSize: number;
  /** CRC-32 of the decoded bytes. */
  crc32: number;
}

/** What a worker is spawned with (its `workerData`), before it is given a container. */
export interface SevenZipWorkerData {
  /** 7-Zip's WebAssembly, compiled once per process. */
  module: CompiledSevenZip;
}

/** One container for a worker (its first message). */
export interface SevenZipJob {
  /** The walker's name of the format, for reasons. */
  format: SevenZipFormat;
  /** The container: its bytes, or the path of its file (read in place, never copied whole). */
  container: { bytes: Uint8Array } | { path: string };
  /** The file 7-Zip opens, made of parts of the container (an lzip stream gets LZMA-alone headers). */
  segments: InputSegment[];
  /** 7-Zip's archive type (`-t`). */
  type: string;
  /** The archive's file name inside the worker (its extension names single-stream output). */
  archiveName: string;
  /** Skip the listing: one entry, the whole decoded stream (lzip). */
  singleStream: boolean;
  /** lzip members in order, when the stream is lzip: checked as they decode. */
  lzipMembers?: LzipMemberCheck[] | undefined;
  /** Bytes one entry may decode to before 7-Zip is stopped (`maxMemberBytes`). */
  maxMemberBytes: number;
  /** Bytes 7-Zip's WebAssembly memory may grow to. */
  heapLimitBytes: number;
  /** The control words ({@link Control}). */
  control: SharedArrayBuffer;
}

/** Indices of the Int32 control words in the shared buffer. */
export const Control = {
  /** Chunks the extractor has taken (the worker waits while too many are outstanding). */
  consumed: 0,
  /** The listing index of an entry the extractor no longer wants (-1: none). */
  stopEntry: 1,
} as const;

/** Int32 words, then one BigInt64 word (the bytes the worker may still produce in all). */
export const controlBytes = 16 + 8;
/** Byte offset of the BigInt64 allowance: total bytes the worker may have produced, all entries. */
export const allowanceOffset = 16;

/** Chunks in flight before the worker waits for the extractor (each at most {@link chunkLimitBytes}). */
export const chunkWindow = 8;
/** Largest chunk the worker sends, in bytes. */
export const chunkLimitBytes = 1024 * 1024;

/** One entry of `7zz l -slt`. */
export interface ListedEntry {
  /** Its place in the listing. */
  index: number;
  /** `Path` as listed (control characters are not printed by 7-Zip). */
  path: string;
  /** `Size`, when listed. */
  size?: number | undefined;
  /** `Packed Size`, or its solid block's, when listed. */
  packedSize?: number | undefined;
  /** `Method`, when listed (`LZMA2:24`, `PPMd:o6`, `m3:22`). */
  method?: string | undefined;
  /** `Encrypted = +`. */
  encrypted: boolean;
  /** A directory (`Folder = +`, or a `D` attribute). */
  directory: boolean;
  /** A symbolic link (an `l` mode, or a `Symbolic Link` target): no content of its own. */
  link: boolean;
}

/** The archive as `7zz l -slt` describes it. */
export interface Listing {
  entries: ListedEntry[];
  /** `Physical Size`: where the archive ends, when listed. */
  physicalSize?: number | undefined;
  /** Errors and warnings 7-Zip gave about the archive as a whole (`ERRORS:`, `WARNINGS:`). */
  problems: string[];
}

/** Why an entry, or the rest of an extraction, ended without its content. */
export interface Outcome {
  code: SkipCode;
  reason: string;
  limit?: LimitName | undefined;
}

/** What the extractor sends the worker: first its container, then (after the listing) what to extract. */
export type ExtractorMessage =
  | { type: "start"; job: SevenZipJob }
  | {
      type: "extract";
      /** Listing indices to extract, in order; `all` for a single stream. */
      selection: number[] | "all";
    };

/** What the worker sends, in order. */
export type WorkerEvent =
  /** The archive could be listed. */
  | { type: "listing"; listing: Listing }
  /** The archive could not be listed or opened (`ENCRYPTED` headers, `CORRUPT`, `UNSUPPORTED`). */
  | { type: "unopened"; outcome: Outcome }
  /** 7-Zip opened the output of entry `entry` (its listing index, -1 when not matched). */
  | { type: "begin"; entry: number; name: string }
  /** Bytes of the entry begun last. */
  | { type: "chunk"; bytes: Uint8Array }
  /** The entry begun last is complete; `outcome` when 7-Zip reported it failed or was stopped. */
  | { type: "end"; entry: number; bytes: number; outcome?: Outcome | undefined }
  /** An entry that was never begun failed (7-Zip named it in an error). */
  | { type: "failed"; entry: number; outcome: Outcome }
  /** Data after the end of a single stream that 7-Zip did not decode. */
  | { type: "trailing"; reason: string }
  /** 7-Zip is done; `outcome` for the selected entries it never began. */
  | { type: "done"; outcome?: Outcome | undefined }
  /** The job is over: the worker waits for another (`heapBytes`: the most 7-Zip's memory grew to). */
  | { type: "idle"; heapBytes: number };
