import { UnpackSkip } from "./extractor.js";

/** A module of a VBA project, as its `dir` stream lists it ([MS-OVBA] 2.3.4.2.3.2). */
export interface VbaModule {
  /** The module's name (`Module1`, `ThisDocument`). */
  name: string;
  /** The name of its stream in the project's `VBA` storage. */
  streamName: string;
  /** Where its compressed source starts in that stream (MODULEOFFSET). */
  sourceOffset: number;
  /** `procedural` (a `.bas` module) or `document` (a class, form or document module: `.cls`). */
  kind: "procedural" | "document";
}

/** Record ids of the `dir` stream this reads ([MS-OVBA] 2.3.4.2). */
const record = {
  projectCodePage: 0x0003,
  projectVersion: 0x0009,
  dirEnd: 0x0010,
  moduleName: 0x0019,
  moduleStreamName: 0x001a,
  moduleTypeProcedural: 0x0021,
  moduleTypeDocument: 0x0022,
  moduleTerminator: 0x002b,
  moduleOffset: 0x0031,
  moduleStreamNameUnicode: 0x0032,
  moduleNameUnicode: 0x0047,
} as const;

/** WHATWG encoding labels of the code pages VBA projects use (PROJECTCODEPAGE). */
const codePageLabels: Record<number, string> = {
  874: "windows-874",
  932: "shift_jis",
  936: "gbk",
  949: "euc-kr",
  950: "big5",
  1250: "windows-1250",
  1251: "windows-1251",
  1252: "windows-1252",
  1253: "windows-1253",
  1254: "windows-1254",
  1255: "windows-1255",
  1256: "windows-1256",
  1257: "windows-1257",
  1258: "windows-1258",
  10000: "macintosh",
  20866: "koi8-r",
  28591: "iso-8859-1",
  65001: "utf-8",
};

/** Text in the project's code page (windows-1252 when it is unknown). */
function decodeText(bytes: Uint8Array, codePage: number): string {
  try {
    return new TextDecoder(codePageLabels[codePage] ?? "windows-1252").decode(bytes);
  } catch {
    return Buffer.from(bytes).toString("latin1");
  }
}

const corrupt = (reason: string) => new UnpackSkip("CORRUPT", `a VBA dir stream ${reason}`);

/** The records whose data is read (the others are stepped over, never held). */
const recordsRead = new Set<number>([
  record.projectCodePage,
  record.moduleName,
  record.moduleNameUnicode,
  record.moduleStreamName,
  record.moduleStreamNameUnicode,
  record.moduleOffset,
  record.moduleTypeDocument,
  record.moduleTypeProcedural,
  record.moduleTerminator,
]);

/**
 * Bytes of a record read that are kept, the rest stepped over: names are all the records
 * read hold, and a compound file's stream names have at most 31 characters (a longer name
 * cut here still names no stream).
 */
const recordBytesKept = 1024;

/** Bytes received in pieces, taken from the front. */
class ByteQueue {
  #pieces: Uint8Array[] = [];
  /** The index of the first piece not wholly taken. */
  #first = 0;
  /** Bytes of that piece already taken. */
  #taken = 0;
  length = 0;

  push(piece: Uint8Array): void {
    if (piece.byteLength === 0) return;
    this.#pieces.push(piece);
    this.length += piece.byteLength;
  }

  /** Drops the first `count` bytes (at most {@link length}). */
  drop(count: number): void {
    this.length -= count;
    let left = count + this.#taken;
    for (let piece = this.#pieces[this.#first]; piece && left >= piece.byteLength; ) {
      left -= piece.byteLength;
      this.#first += 1;
      piece = this.#pieces[this.#first];
    }
    this.#taken = left;
    if (this.#first >= 64 && this.#first * 2 >= this.#pieces.length) {
      this.#pieces = this.#pieces.slice(this.#first);
      this.#first = 0;
    }
  }

  /** The first `count` bytes (at most {@link length}), a view when they are in one piece. */
  take(count: number): Buffer {
    const first = this.#pieces[this.#first] ?? new Uint8Array(0);
    let bytes: Buffer;
    if (first.byteLength - this.#taken >= count)
      bytes = Buffer.from(first.buffer, first.byteOffset + this.#taken, count);
    else {
      bytes = Buffer.alloc(count);
      let from = this.#taken;
      for (let index = this.#first, filled = 0; filled < count; index += 1, from = 0) {
        const part = (this.#pieces[index] as Uint8Array).subarray(from, from + count - filled);
        bytes.set(part, filled);
        filled += part.byteLength;
      }
    }
    this.drop(count);
    return bytes;
  }
}

/** The modules a `dir` stream lists, as far as {@link VbaDirReader} read it. */
export interface VbaModuleListing {
  /** The modules, in order (at most the reader's `maxModules`). */
  modules: VbaModule[];
  /** True when the stream lists more modules than `maxModules`: those past it were not read. */
  more: boolean;
}

/**
 * Reads a decompressed `dir` stream ([MS-OVBA] 2.3.4.2) as it comes, piece by piece, and
 * stops as soon as it knows its modules: its records are `Id` (2 bytes), `Size` (4 bytes) and
 * `Size` bytes, except PROJECTVERSION, whose 4-byte `Reserved` is followed by 6 bytes. A
 * module's name and stream name are taken from their Unicode records when present, else from
 * the project's code page. Only the records it reads are held, their first
 * {@link recordBytesKept} bytes (the rest is stepped over as it comes, like the records it
 * does not read); past `maxModules` modules, or at the stream's end record, it is {@link done}
 * (the caller stops decompressing). Throws `UnpackSkip` (`CORRUPT`) for a module without a
 * stream name or offset, and at {@link end} for a record running past the stream.
 */
export class VbaDirReader {
  readonly #modules: VbaModule[] = [];
  readonly #queue = new ByteQueue();
  #more = false;
  #done = false;
  #codePage = 1252;
  #current: Partial<VbaModule> & { nameUnicode?: string; streamNameUnicode?: string } = {};
  /** The record whose data is awaited, once its header is read. */
  #record: { id: number; size: number } | undefined;
  /** Bytes still to step over (the rest of a record not read), and that record. */
  #skip = 0;
  #skipped = { id: 0, size: 0 };
  /** True when what is stepped over may be cut short by the stream's end (PROJECTVERSION). */
  #skipMayEnd = false;

  constructor(readonly maxModules: number) {}

  /** True once the modules are known: the end record, or more than `maxModules` modules. */
  get done(): boolean {
    return this.#done;
  }

  /** Reads the next bytes of the stream; returns {@link done}. */
  push(bytes: Uint8Array): boolean {
    if (this.#done) return true;
    const queue = this.#queue;
    queue.push(bytes);
    for (;;) {
      if (this.#skip > 0) {
        const stepped = Math.min(this.#skip, queue.length);
        queue.drop(stepped);
        this.#skip -= stepped;
        if (this.#skip > 0) return false;
      }
      if (!this.#record) {
        if (queue.length < 6) return false;
        const header = queue.take(6);
        const id = header.readUInt16LE(0);
        const size = header.readUInt32LE(2);
        if (id === record.projectVersion) {
          this.#skip = 6;
          this.#skipMayEnd = true;
          continue;
        }
        if (id === record.dirEnd) {
          this.#done = true;
          return true;
        }
        if (!recordsRead.has(id)) {
          this.#skip = size;
          this.#skipped = { id, size };
          this.#skipMayEnd = false;
          continue;
        }
        this.#record = { id, size };
      }
      const { id, size } = this.#record;
      const kept = Math.min(size, recordBytesKept);
      if (queue.length < kept) return false;
      this.#record = undefined;
      this.#skip = size - kept;
      this.#skipped = { id, size };
      this.#skipMayEnd = false;
      this.#read(id, queue.take(kept));
      if (this.#done) return true;
    }
  }

  /** The stream ended: the modules read. Throws `CORRUPT` when a record runs past its end. */
  end(): VbaModuleListing {
    const cut = this.#record ?? (this.#skip > 0 && !this.#skipMayEnd ? this.#skipped : undefined);
    if (!this.#done && cut)
      throw corrupt(`has a record (0x${cut.id.toString(16)}) of ${cut.size} bytes past its end`);
    this.#done = true;
    return { modules: this.#modules, more: this.#more };
  }

  #read(id: number, data: Buffer): void {
    const current = this.#current;
    switch (id) {
      case record.projectCodePage:
        if (data.length >= 2) this.#codePage = data.readUInt16LE(0);
        break;
      case record.moduleName:
        this.#current = { name: decodeText(data, this.#codePage), kind: "procedural" };
        break;
      case record.moduleNameUnicode:
        current.nameUnicode = data.toString("utf16le");
        break;
      case record.moduleStreamName:
        current.streamName = decodeText(data, this.#codePage);
        break;
      case record.moduleStreamNameUnicode:
        current.streamNameUnicode = data.toString("utf16le");
        break;
      case record.moduleOffset:
        if (data.length >= 4) current.sourceOffset = data.readUInt32LE(0);
        break;
      case record.moduleTypeDocument:
        current.kind = "document";
        break;
      case record.moduleTypeProcedural:
        current.kind = "procedural";
        break;
      case record.moduleTerminator: {
        const streamName = current.streamNameUnicode || current.streamName;
        if (streamName === undefined || current.sourceOffset === undefined)
          throw corrupt("lists a module without a stream name or a source offset");
        if (this.#modules.length >= this.maxModules) {
          this.#more = true;
          this.#done = true;
          return;
        }
        this.#modules.push({
          name: current.nameUnicode || current.name || streamName,
          streamName,
          sourceOffset: current.sourceOffset,
          kind: current.kind ?? "procedural",
        });
        this.#current = {};
        break;
      }
    }
  }
}
