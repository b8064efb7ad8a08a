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

/**
 * The modules a decompressed `dir` stream lists, in order ([MS-OVBA] 2.3.4.2): its records are
 * `Id` (2 bytes), `Size` (4 bytes) and `Size` bytes, except PROJECTVERSION, whose 4-byte
 * `Reserved` is followed by 6 bytes. A module's name and stream name are taken from their
 * Unicode records when present, else from the project's code page. Throws `UnpackSkip`
 * (`CORRUPT`) for a record running past the stream.
 */
export function vbaModules(dir: Uint8Array): VbaModule[] {
  const view = Buffer.from(dir.buffer, dir.byteOffset, dir.byteLength);
  const modules: VbaModule[] = [];
  let codePage = 1252;
  let current: Partial<VbaModule> & { nameUnicode?: string; streamNameUnicode?: string } = {};
  for (let position = 0; position + 6 <= view.length; ) {
    const id = view.readUInt16LE(position);
    const size = view.readUInt32LE(position + 2);
    position += 6;
    if (id === record.projectVersion) {
      position += 6;
      continue;
    }
    if (position + size > view.length)
      throw corrupt(`has a record (0x${id.toString(16)}) of ${size} bytes past its end`);
    const data = view.subarray(position, position + size);
    position += size;
    switch (id) {
      case record.projectCodePage:
        if (size >= 2) codePage = data.readUInt16LE(0);
        break;
      case record.moduleName:
        current = { name: decodeText(data, codePage), kind: "procedural" };
        break;
      case record.moduleNameUnicode:
        current.nameUnicode = data.toString("utf16le");
        break;
      case record.moduleStreamName:
        current.streamName = decodeText(data, codePage);
        break;
      case record.moduleStreamNameUnicode:
        current.streamNameUnicode = data.toString("utf16le");
        break;
      case record.moduleOffset:
        if (size >= 4) current.sourceOffset = data.readUInt32LE(0);
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
        modules.push({
          name: current.nameUnicode || current.name || streamName,
          streamName,
          sourceOffset: current.sourceOffset,
          kind: current.kind ?? "procedural",
        });
        current = {};
        break;
      }
      case record.dirEnd:
        return modules;
    }
  }
  return modules;
}
