import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { deflateRawSync } from "node:zlib";
import {
  artifactFromBytes,
  defineScanner,
  eicarBytes,
  eicarMalwareFamily,
  type Scanner,
} from "@engine/core";
import { crc32 } from "../src/extractors/crc32.js";
import { type UnpackEvent, unpack } from "../src/index.js";

/** A temporary directory for the duration of `action` (sync or async), removed after. */
export function inTemporaryDirectory<T>(action: (directory: string) => T): T {
  const directory = mkdtempSync(join(tmpdir(), "engine-zip-test-"));
  const remove = () => rmSync(directory, { recursive: true, force: true });
  let result: T;
  try {
    result = action(directory);
  } catch (error) {
    remove();
    throw error;
  }
  if (result instanceof Promise) return result.finally(remove) as T;
  remove();
  return result;
}

/**
 * A zip written by a real tool: `files` (name -> content) written under a temp directory,
 * then `zip <flags> out.zip <names>` or `7zz a -tzip <flags> out.zip <names>` run there.
 * `streamed`: `zip` writes to a pipe, so it cannot seek back: data descriptors (and zip64
 * local headers), as Java, Go and streaming writers do.
 */
export function toolZip(
  tool: "zip" | "7zz",
  files: Record<string, Uint8Array | string>,
  flags: string[] = [],
  options: { streamed?: boolean } = {},
): Buffer {
  return inTemporaryDirectory((directory) => {
    const input = join(directory, "in");
    for (const [name, content] of Object.entries(files)) {
      mkdirSync(dirname(join(input, name)), { recursive: true });
      writeFileSync(join(input, name), content);
    }
    const output = join(directory, "out.zip");
    const names = Object.keys(files);
    const run = (args: string[]) =>
      execFileSync(tool, args, {
        cwd: input,
        stdio: ["ignore", "pipe", "pipe"],
        maxBuffer: 1024 * 1024 * 1024,
      });
    if (tool === "zip" && options.streamed) return run(["-q", "-X", ...flags, "-", ...names]);
    run(
      tool === "zip"
        ? ["-q", "-X", ...flags, output, ...names]
        : ["a", "-tzip", "-bd", "-bso0", ...flags, output, ...names],
    );
    return readFileSync(output);
  });
}

/** One entry of a {@link handZip}. */
export interface HandEntry {
  name: string;
  content: Uint8Array | string;
  /** 8 (deflate, the default) or 0 (stored); or any number, written as it is (data stored). */
  method?: number;
  /** The method the local header claims, when it is to disagree with the directory. */
  localMethod?: number;
  /** The uncompressed size to declare (a lie when it is not the content's). */
  declaredSize?: number;
  /** General purpose flags (bit 0: encrypted). */
  flags?: number;
  /** False: a local header and data only, missing from the central directory. */
  listed?: boolean;
  /** Sizes and CRC in a signed data descriptor after the data (the local header has zeros). */
  descriptor?: boolean;
}

/** A 30-byte local header and its name. */
function localHeader(
  name: Buffer,
  fields: { flags: number; method: number; crc: number; compressed: number; size: number },
): Buffer {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(20, 4);
  header.writeUInt16LE(fields.flags, 6);
  header.writeUInt16LE(fields.method, 8);
  header.writeUInt32LE(0x00210000, 10); // 1980-01-01 00:00
  header.writeUInt32LE(fields.crc, 14);
  header.writeUInt32LE(fields.compressed, 18);
  header.writeUInt32LE(fields.size, 22);
  header.writeUInt16LE(name.length, 26);
  return Buffer.concat([header, name]);
}

/** A central directory record pointing at `offset`. */
function centralRecord(
  name: Buffer,
  fields: { flags: number; method: number; crc: number; compressed: number; size: number },
  offset: number,
): Buffer {
  const record = Buffer.alloc(46);
  record.writeUInt32LE(0x02014b50, 0);
  record.writeUInt16LE(0x031e, 4);
  record.writeUInt16LE(20, 6);
  record.writeUInt16LE(fields.flags, 8);
  record.writeUInt16LE(fields.method, 10);
  record.writeUInt32LE(0x00210000, 12);
  record.writeUInt32LE(fields.crc, 16);
  record.writeUInt32LE(fields.compressed, 20);
  record.writeUInt32LE(fields.size, 24);
  record.writeUInt16LE(name.length, 28);
  record.writeUInt32LE(0o100644 * 0x10000, 38); // a regular file, rw-r--r--
  record.writeUInt32LE(offset, 42);
  return Buffer.concat([record, name]);
}

/** An end-of-central-directory record. */
function endRecord(records: number, directoryLength: number, directoryOffset: number): Buffer {
  const record = Buffer.alloc(22);
  record.writeUInt32LE(0x06054b50, 0);
  record.writeUInt16LE(records, 8);
  record.writeUInt16LE(records, 10);
  record.writeUInt32LE(directoryLength, 12);
  record.writeUInt32LE(directoryOffset, 16);
  return record;
}

/**
 * A zip written by hand, for what tools refuse to write: lying sizes, an entry missing from
 * the directory, a local header disagreeing with its record, data between the entries and the
 * directory (`between`), bytes before it (`prefix`, offsets counted from the zip's start).
 */
export function handZip(
  entries: HandEntry[],
  options: { prefix?: Uint8Array; between?: Uint8Array } = {},
): Buffer {
  const parts: Buffer[] = [];
  const records: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const content = Buffer.from(entry.content);
    const method = entry.method ?? 8;
    const data = method === 8 ? deflateRawSync(content) : content;
    const name = Buffer.from(entry.name, "utf8");
    const fields = {
      flags: entry.flags ?? 0,
      method,
      crc: crc32(content),
      compressed: data.length,
      size: entry.declaredSize ?? content.length,
    };
    const local = entry.descriptor
      ? { ...fields, flags: fields.flags | 8, crc: 0, compressed: 0, size: 0 }
      : fields;
    const header = localHeader(name, { ...local, method: entry.localMethod ?? method });
    if (entry.listed !== false)
      records.push(
        centralRecord(name, entry.descriptor ? { ...fields, flags: local.flags } : fields, offset),
      );
    const descriptor = Buffer.alloc(entry.descriptor ? 16 : 0);
    if (entry.descriptor) {
      descriptor.writeUInt32LE(0x08074b50, 0);
      descriptor.writeUInt32LE(fields.crc, 4);
      descriptor.writeUInt32LE(fields.compressed, 8);
      descriptor.writeUInt32LE(fields.size, 12);
    }
    parts.push(header, data, descriptor);
    offset += header.length + data.length + descriptor.length;
  }
  if (options.between) {
    parts.push(Buffer.from(options.between));
    offset += options.between.length;
  }
  const directory = Buffer.concat(records);
  return Buffer.concat([
    Buffer.from(options.prefix ?? new Uint8Array(0)),
    ...parts,
    directory,
    endRecord(records.length, directory.length, offset),
  ]);
}

/**
 * Fifield's overlapping-entry bomb (bamsoftware.com/hacks/zipbomb), quoted form: `files`
 * local headers in a row, each entry's data a stored deflate block quoting the next local
 * header, then the next entry's data, down to one shared kernel (`kernelBytes` of `a`,
 * deflated). Entry i decodes to the headers after it and the kernel; every entry overlaps the
 * next. CRCs and sizes are right (unzip would extract it).
 */
export function overlapBomb(files: number, kernelBytes: number): Buffer {
  const kernelContent = Buffer.alloc(kernelBytes, 0x61);
  const kernel = deflateRawSync(kernelContent, { level: 9 });
  const names = Array.from({ length: files }, (_, index) =>
    Buffer.from(`${index}`.padStart(4, "0")),
  );
  // Backwards: each entry's data and output hold the next entry's header.
  const headers: Buffer[] = new Array(files);
  let data: Buffer = kernel;
  let output: Buffer = kernelContent;
  for (let index = files - 1; index >= 0; index -= 1) {
    const name = names[index] as Buffer;
    headers[index] = localHeader(name, {
      flags: 0,
      method: 8,
      crc: crc32(output),
      compressed: data.length,
      size: output.length,
    });
    if (index === 0) break;
    const quote = Buffer.alloc(5);
    quote.writeUInt8(0, 0); // not final, stored
    quote.writeUInt16LE((headers[index] as Buffer).length, 1);
    quote.writeUInt16LE(~(headers[index] as Buffer).length & 0xffff, 3);
    data = Buffer.concat([quote, headers[index] as Buffer, data]);
    output = Buffer.concat([headers[index] as Buffer, output]);
  }
  // Physical layout: header 0, its data (which holds every later header), the directory.
  const body = Buffer.concat([headers[0] as Buffer, data]);
  const records: Buffer[] = [];
  let offset = 0;
  for (let index = 0; index < files; index += 1) {
    const header = headers[index] as Buffer;
    const view = header.subarray(0, 30);
    records.push(
      centralRecord(
        names[index] as Buffer,
        {
          flags: 0,
          method: 8,
          crc: view.readUInt32LE(14),
          compressed: view.readUInt32LE(18),
          size: view.readUInt32LE(22),
        },
        offset,
      ),
    );
    offset += header.length + 5;
  }
  const directory = Buffer.concat(records);
  return Buffer.concat([body, directory, endRecord(files, directory.length, body.length)]);
}

/**
 * Fifield's full-overlap form: one local header and its kernel, and `files` directory records
 * all pointing at it.
 */
export function sharedHeaderBomb(files: number, kernelBytes: number): Buffer {
  const content = Buffer.alloc(kernelBytes, 0x61);
  const data = deflateRawSync(content, { level: 9 });
  const fields = {
    flags: 0,
    method: 8,
    crc: crc32(content),
    compressed: data.length,
    size: content.length,
  };
  const body = Buffer.concat([localHeader(Buffer.from("kernel"), fields), data]);
  const directory = Buffer.concat(
    Array.from({ length: files }, (_, index) =>
      centralRecord(Buffer.from(`file${index}`), fields, 0),
    ),
  );
  return Buffer.concat([body, directory, endRecord(files, directory.length, body.length)]);
}

/**
 * Fifield's extra-field quoting, with the directory hiding it: each local header's extra
 * field holds the next local header, so every entry's data starts at one shared kernel, and
 * the directory declares 1 byte of compressed data each (its entries seem not to overlap).
 */
export function extraFieldBomb(files: number, kernelBytes: number): Buffer {
  const content = Buffer.alloc(kernelBytes, 0x61);
  const kernel = deflateRawSync(content, { level: 9 });
  const fields = { flags: 0, method: 8, crc: crc32(content), compressed: 1, size: kernelBytes };
  const headerBytes = 30 + 4;
  const headers: Buffer[] = [];
  const records: Buffer[] = [];
  for (let index = 0; index < files; index += 1) {
    const name = Buffer.from(`${index}`.padStart(4, "0"));
    const header = localHeader(name, fields);
    header.writeUInt16LE(headerBytes * (files - 1 - index), 28); // the extra field: the rest
    headers.push(header);
    records.push(centralRecord(name, fields, headerBytes * index));
  }
  const body = Buffer.concat([...headers, kernel]);
  const directory = Buffer.concat(records);
  return Buffer.concat([body, directory, endRecord(files, directory.length, body.length)]);
}

/** Every event of an unpack of `bytes`, members with the first 80 bytes of their content. */
export async function walkEvents(
  bytes: Uint8Array,
  options: Parameters<typeof unpack>[1] = {},
  filename = "root.zip",
) {
  const events: Array<UnpackEvent & { text?: string }> = [];
  for await (const event of unpack(artifactFromBytes(bytes, { filename }), options)) {
    if (event.kind === "member") {
      const content = Buffer.from(await event.member.artifact.bytes());
      events.push({ ...event, text: content.subarray(0, 80).toString("latin1") });
    } else events.push(event);
  }
  return events;
}

type Events = Awaited<ReturnType<typeof walkEvents>>;

/** The member paths of `events`. */
export const memberPaths = (events: Events) =>
  events.flatMap((event) => (event.kind === "member" ? [event.member.path] : []));

/** The skips of `events` as `path CODE[ limit]`. */
export const skipLines = (events: Events) =>
  events.flatMap((event) =>
    event.kind === "skipped"
      ? [`${event.path} ${event.code}${event.limit ? ` ${event.limit}` : ""}`]
      : [],
  );

/** The path of the first member whose content starts with EICAR, if any. */
export function eicarPath(events: Events): string | undefined {
  const eicar = eicarBytes().toString("latin1");
  for (const event of events)
    if (event.kind === "member" && event.text?.startsWith(eicar)) return event.member.path;
  return undefined;
}

/**
 * EICAR followed by blanks (which its definition allows): long enough that zip tools deflate
 * it rather than store it, so the string is not in the zip's own bytes.
 */
export function eicarPadded(): Buffer {
  return Buffer.concat([eicarBytes(), Buffer.alloc(2048, 0x20)]);
}

/**
 * EICAR as its definition has it: a file that starts with the string (the plain EICAR scanner
 * also finds it inside a stored zip's own bytes, before any member is looked at).
 */
export function createStrictEicarScanner(): Scanner {
  const needle = eicarBytes();
  return defineScanner({
    name: "strict-eicar",
    async scan(artifact, { signal }) {
      const bytes = Buffer.from(await artifact.bytes({ signal }));
      const found = bytes.subarray(0, needle.length).equals(needle);
      return found
        ? { verdict: "malicious", confidence: 1, metadata: { malware_family: eicarMalwareFamily } }
        : { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    },
  });
}

export { eicarBytes };
