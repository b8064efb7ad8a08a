import CFB from "cfb";
import { checkCompoundFile } from "./compound-file-guard.js";
import {
  type ContainerSource,
  type ExtractContext,
  type ExtractedEntry,
  type Extractor,
  UnpackSkip,
} from "./extractor.js";
import { isEncryptedPackage, legacyEncryptedStreams } from "./office-encryption.js";
import { vbaDecompress, vbaDecompressedChunks } from "./vba-decompression.js";
import { vbaModules } from "./vba-project.js";

/** A compound file's signature ([MS-CFB] 2.2). */
const signature = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
/** Bytes handed to the walker at a time. */
const sliceBytes = 256 * 1024;

/** A stream of the compound file: its path (storages joined by `/`, the root's name left out). */
interface CompoundStream {
  path: string;
  content: Uint8Array;
  /** The size its directory entry declares (cfb cuts the content to it, or has fewer bytes). */
  declaredSize: number;
}

/** `bytes` in slices (views, no copy). */
async function* slices(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.byteLength; at += sliceBytes)
    yield bytes.subarray(at, Math.min(at + sliceBytes, bytes.byteLength));
}

/** What cfb holds as a stream's content (a Buffer, rarely an array of bytes, or nothing). */
function contentBytes(content: unknown): Uint8Array {
  if (content instanceof Uint8Array) return content;
  if (Array.isArray(content)) return Uint8Array.from(content as number[]);
  return new Uint8Array(0);
}

/** The compound file read by cfb, once checked to be safe for it; its streams in order. */
async function readStreams(
  source: ContainerSource,
  context: ExtractContext,
): Promise<CompoundStream[]> {
  const { maxMemberBytes } = context.limits;
  if (source.size > maxMemberBytes)
    throw new UnpackSkip(
      "LIMITS",
      `a compound file of ${source.size} bytes, more than maxMemberBytes (${maxMemberBytes} bytes): cfb reads it whole`,
      "maxMemberBytes",
    );
  const bytes = await source.artifact.bytes({ signal: context.signal });
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!signature.every((byte, index) => file[index] === byte))
    throw new UnpackSkip("CORRUPT", "no compound file signature");
  // cfb's copies of the sector chains: about the file's size; refused past twice the bound.
  checkCompoundFile(file, 2 * maxMemberBytes);
  let container: CFB.CFB$Container;
  try {
    container = CFB.parse(file);
  } catch (error) {
    throw new UnpackSkip(
      "CORRUPT",
      `cfb could not read the compound file: ${(error as Error)?.message ?? String(error)}`,
    );
  }
  const root = container.FullPaths[0] ?? "";
  const streams: CompoundStream[] = [];
  container.FileIndex.forEach((entry, index) => {
    if (entry.type !== 2) return;
    const fullPath = container.FullPaths[index] ?? entry.name;
    streams.push({
      path: fullPath.startsWith(root) ? fullPath.slice(root.length) : fullPath,
      content: contentBytes(entry.content),
      declaredSize: Math.max(0, entry.size),
    });
  });
  return streams;
}

/** The storages holding a VBA project: each `VBA` storage with a `dir` stream. */
function vbaStorages(streams: readonly CompoundStream[]): string[] {
  return streams
    .map((stream) => stream.path)
    .filter((path) => /(^|\/)vba\/dir$/i.test(path))
    .map((path) => path.slice(0, -"/dir".length));
}

/**
 * The source code of every module of the VBA project in `storage` (`Macros/VBA`,
 * `_VBA_PROJECT_CUR/VBA`, `VBA` in a vbaProject.bin): the `dir` stream decompressed (whole,
 * within `maxMemberBytes`) lists each module's stream and where its compressed source starts;
 * each source comes out decompressed chunk by chunk as `<storage>/<module>.bas` (or `.cls`),
 * in the project's code page. A module that cannot be found or read is skipped `CORRUPT`.
 */
async function* vbaSources(
  storage: string,
  byPath: ReadonlyMap<string, Uint8Array>,
  context: ExtractContext,
): AsyncGenerator<ExtractedEntry> {
  const dir = byPath.get(`${storage}/dir`.toLowerCase()) ?? new Uint8Array(0);
  let modules: ReturnType<typeof vbaModules>;
  try {
    modules = vbaModules(vbaDecompress(dir, context.limits.maxMemberBytes));
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
  for (const module of modules) {
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
      open: () => batched(vbaDecompressedChunks(compressed)),
    };
  }
}

/** Chunks gathered into slices of about 64 KiB. */
async function* batched(chunks: Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let held: Uint8Array[] = [];
  let heldBytes = 0;
  for (const chunk of chunks) {
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
 * `maxMemberBytes` (cfb reads a file whole). Entries: the source code of each VBA module
 * (method `ms-ovba`: decompressed), then every stream by its path (method `stored`).
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
    for (const storage of vbaStorages(streams)) yield* vbaSources(storage, byPath, context);
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
