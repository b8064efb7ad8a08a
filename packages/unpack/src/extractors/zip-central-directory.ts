import type { Entry } from "@zip.js/zip.js";
import { lazyLibrary } from "./library-loading.js";
import { decodeCodePage437 } from "./zip-local-header.js";
import type { ZipSourceAccess } from "./zip-source-access.js";

/**
 * Data after the end record zip.js still reads past (1 MiB); more, and the directory is not
 * found (the zip is then read from its local headers and reported corrupt). Set explicitly so
 * that zip.js never searches a whole file for an end record.
 */
export const maximumAppendedBytes = 1024 * 1024;

/**
 * zip.js, loaded at the first zip (its 56 modules took ~30 ms of every start-up), with the
 * reader it reads a zip through: {@link ZipSourceAccess} (positional reads, one file handle).
 */
const zipLibrary = lazyLibrary("@zip.js/zip.js", async () => {
  const { Reader, ZipReader } = await import("@zip.js/zip.js");
  class SourceReader extends Reader<ZipSourceAccess> {
    constructor(private readonly access: ZipSourceAccess) {
      super(access);
      this.size = access.size;
    }

    override readUint8Array(index: number, length: number): Promise<Uint8Array> {
      return this.access.read(index, length);
    }
  }
  return { ZipReader, SourceReader };
});

/** Where the central directory zip.js read is, once its entries were read. */
export interface DirectoryPlace {
  /** Offset of the central directory (prepended data accounted for). */
  offset: number;
  /** Its length in bytes. */
  length: number;
}

/** Directory entries read between two turns of the event loop. */
const entriesBetweenTurns = 256;

/**
 * The central directory's entries, in its order, parsed by zip.js: the end record found
 * (zip64 too; the last one that reaches the end and points at a directory), prepended data
 * (a self-extracting stub, a first zip concatenated before) accounted for in the offsets,
 * names decoded (UTF-8, Unicode path fields, or code page 437 with control characters kept),
 * encryption (ZipCrypto, AES) flagged.
 * Tolerant: every name is taken (names are data here, never paths) and a disagreeing local
 * header is left to the caller, who reads both. Throws what zip.js cannot parse.
 */
export async function* centralDirectoryEntries(
  access: ZipSourceAccess,
  signal: AbortSignal,
): AsyncGenerator<Entry, DirectoryPlace | undefined> {
  const { ZipReader, SourceReader } = await zipLibrary();
  const reader = new ZipReader(new SourceReader(access), {
    useWebWorkers: false,
    strictness: "tolerant",
    filenameValidation: "tolerant",
    maxAppendedDataSize: maximumAppendedBytes,
    checkOverlappingEntry: false,
    // Legacy names as code page 437 with their control characters kept (zip.js shows glyphs).
    decodeText: (value, encoding) => (encoding === "cp437" ? decodeCodePage437(value) : undefined),
    signal,
  });
  try {
    let read = 0;
    for await (const entry of reader.getEntriesGenerator()) {
      yield entry;
      // zip.js parses entries without ever leaving the microtask queue: a directory of 65,534
      // records would hold the event loop for most of a second.
      read += 1;
      if (read % entriesBetweenTurns === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const { directoryOffset, directoryLength } = reader;
    return directoryOffset === undefined
      ? undefined
      : { offset: directoryOffset, length: directoryLength ?? 0 };
  } finally {
    await reader.close();
  }
}
