import type CFB from "cfb";

/** The cfb library (its default export): see {@link readCompoundFile}. */
export type CfbLibrary = typeof CFB;

import { UnpackSkip } from "./extractor.js";

/**
 * cfb 1.2.2's `parse` trusts the file. Three of its loops follow numbers the file gives, with
 * nothing to stop them, synchronously (no deadline can interrupt them):
 * - `get_sector_list` follows a FAT chain with no loop check: a stream starting in the middle
 *   of a chain that loops back never ends (a 14 kB file hangs the process);
 * - `make_sector_list` copies every chain from every sector not yet seen: chains walked from
 *   their middle first are copied again from their head, quadratic in memory;
 * - `build_full_paths` follows the directory's parent links (built from the left, right and
 *   child links) with no loop check, and queues siblings with a linear search.
 * {@link checkCompoundFile} replays these loops on the file's numbers, the way cfb reads them,
 * bounded, and refuses the file before cfb sees it when they would not end or would copy more
 * than allowed. Tied to cfb 1.2.2 (the version is pinned).
 */

/** ENDOFCHAIN, as cfb reads it (a signed 32-bit value). */
const endOfChain = -2;
/** NOSTREAM (no sibling or child), as cfb reads it. */
const noStream = -1;
/** Directory entries a compound file may have (cfb's path building is quadratic in them). */
export const maximumDirectoryEntries = 16_384;
/** Parent links followed in all while cfb builds the entries' paths. */
const maximumPathSteps = 1_000_000;
/** Streams shorter than this live in the mini stream ([MS-CFB] 2.6.3). */
const miniStreamCutoff = 4096;
/** Mini sectors' size. */
const miniSectorBytes = 64;

const corrupt = (reason: string) => new UnpackSkip("CORRUPT", `the compound file ${reason}`);

/** A signed 32-bit little-endian value, exactly as cfb computes it (NaN past the end). */
function int32(bytes: Uint8Array | undefined, at: number): number {
  if (bytes === undefined) return Number.NaN;
  const byte = (index: number) => bytes[index] as number;
  return (byte(at + 3) << 24) + (byte(at + 2) << 16) + (byte(at + 1) << 8) + byte(at);
}

/** The file's sectors as cfb cuts them (sector `i` at `(i + 1) × size`). */
class Sectors {
  readonly count: number;
  constructor(
    readonly file: Uint8Array,
    readonly size: number,
  ) {
    this.count = Math.ceil(file.length / size) - 1;
  }
  at(index: number): Uint8Array | undefined {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) return undefined;
    return this.file.subarray((index + 1) * this.size, (index + 2) * this.size);
  }
}

/** The FAT sectors' locations: the header's 109, then the DIFAT chain (cfb's `sleuth_fat`). */
function fatAddresses(file: Uint8Array, sectors: Sectors): number[] {
  const addresses: number[] = [];
  for (let index = 0; index < 109; index += 1) {
    const address = int32(file, 76 + index * 4);
    if (address < 0) break;
    addresses[index] = address;
  }
  let next = int32(file, 68);
  let left = int32(file, 72);
  const visited = new Set<number>();
  while (next !== endOfChain && next !== -1) {
    const sector = sectors.at(next);
    if (!sector) break;
    if (visited.has(next)) throw corrupt("has a DIFAT chain that loops");
    visited.add(next);
    for (let index = 0; index < sectors.size / 4 - 1; index += 1) {
      const address = int32(sector, index * 4);
      if (address === endOfChain) break;
      addresses.push(address);
    }
    if (left < 1) break;
    left -= 1;
    next = int32(sector, sectors.size - 4);
  }
  return addresses;
}

/** A directory entry's numbers cfb reads: its type and its left, right and child links. */
interface DirectoryLinks {
  type: number;
  left: number;
  right: number;
  child: number;
}

/** The file's FAT as cfb follows it, and a counter of the bytes cfb copies. */
interface ChainReader {
  sectors: Sectors;
  /** The sector after `index` in its chain (a negative or NaN value ends it), or none. */
  next(index: number): number | undefined;
  /** Counts `bytes` cfb copies; throws `LIMITS` past the bound. */
  copy(bytes: number): void;
}

/**
 * Replays cfb's `make_sector_list`: from the directory's sector on, every sector not yet seen
 * heads a chain, followed until its end or a sector seen in that chain, and copied. Returns
 * the chains' heads (cfb's `sector_list` keys) and the directory's chain.
 */
function replayChains(
  reader: ChainReader,
  directoryStart: number,
): { heads: Set<number>; directoryChain: number[] } {
  const { sectors } = reader;
  const heads = new Set<number>();
  const checked = new Uint8Array(sectors.count);
  let directoryChain: number[] = [];
  for (let offset = 0; offset < sectors.count; offset += 1) {
    let head = offset + directoryStart;
    if (head >= sectors.count) head -= sectors.count;
    if (checked[head]) continue;
    heads.add(head);
    const chain: number[] = [];
    const seen = new Set<number>();
    for (let index: number | undefined = head; index !== undefined && index >= 0; ) {
      if (index >= sectors.count) throw corrupt("has a FAT chain that runs past its end");
      seen.add(index);
      checked[index] = 1;
      chain.push(index);
      reader.copy(sectors.size);
      index = reader.next(index);
      if (index !== undefined && seen.has(index)) break;
    }
    if (head === directoryStart) directoryChain = chain;
  }
  return { heads, directoryChain };
}

/**
 * Replays cfb's `read_directory`: 128-byte entries along the directory's chain; a large
 * stream whose start heads no chain is followed again (cfb's `get_sector_list`, which has no
 * loop check: here it has one). Returns each entry's type and links.
 */
function replayDirectory(
  reader: ChainReader,
  directoryChain: readonly number[],
  heads: Set<number>,
): DirectoryLinks[] {
  const { sectors } = reader;
  const directory: DirectoryLinks[] = [];
  for (const sector of directoryChain)
    for (let at = 0; at + 128 <= sectors.size; at += 128) {
      if (directory.length >= maximumDirectoryEntries)
        throw new UnpackSkip(
          "LIMITS",
          `the compound file has more than ${maximumDirectoryEntries} directory entries`,
          "maxMembers",
        );
      const entry = (sectors.at(sector) as Uint8Array).subarray(at, at + 128);
      if (entry.length < 128) throw corrupt("has a directory entry cut short");
      let type = entry[66] as number;
      let start = int32(entry, 116);
      const size = int32(entry, 120);
      if (size < 0 && start < 0) {
        type = 0;
        start = endOfChain;
      }
      if (type !== 5 && size >= miniStreamCutoff && !heads.has(start)) {
        if (start >= sectors.count) throw corrupt(`has a stream starting past its end (${start})`);
        let steps = 0;
        for (let index: number | undefined = start; index !== undefined && index >= 0; ) {
          if (index >= sectors.count) throw corrupt("has a FAT chain that runs past its end");
          steps += 1;
          if (steps > sectors.count) throw corrupt("has a FAT chain that loops");
          reader.copy(sectors.size);
          index = reader.next(index);
        }
        heads.add(start);
      } else if (type !== 5 && size > 0 && size < miniStreamCutoff) {
        reader.copy(Math.ceil(size / miniSectorBytes) * miniSectorBytes);
      }
      directory.push({
        type,
        left: int32(entry, 68),
        right: int32(entry, 72),
        child: int32(entry, 76),
      });
    }
  return directory;
}

/**
 * Checks that cfb 1.2.2 reads `file` in bounded time and memory: its FAT chains and directory
 * tree replayed as cfb follows them. Throws `UnpackSkip` (`CORRUPT`, or `LIMITS` past
 * `maxCopiedBytes` of chain copies or {@link maximumDirectoryEntries}).
 */
export function checkCompoundFile(file: Uint8Array, maxCopiedBytes: number): void {
  const major = file[26] ?? 0;
  const sectorBytes = major === 3 ? 512 : major === 4 ? 4096 : 0;
  if (sectorBytes === 0) throw corrupt(`has major version ${major} (3 or 4 expected)`);
  const sectors = new Sectors(file, sectorBytes);
  if (sectors.count < 2) throw corrupt("is shorter than a header, a FAT and a directory sector");
  const addresses = fatAddresses(file, sectors);
  let copied = 0;
  const reader: ChainReader = {
    sectors,
    next(index) {
      const fatSector = sectors.at(addresses[Math.floor((index * 4) / sectorBytes)] ?? Number.NaN);
      return fatSector ? int32(fatSector, (index * 4) & (sectorBytes - 1)) : undefined;
    },
    copy(bytes) {
      copied += bytes;
      if (copied > maxCopiedBytes)
        throw new UnpackSkip(
          "LIMITS",
          `the compound file's sector chains would make cfb copy more than ${maxCopiedBytes} bytes`,
          "maxMemberBytes",
        );
    },
  };
  const directoryStart = int32(file, 48);
  if (!(directoryStart >= 0 && directoryStart < sectors.count))
    throw corrupt(`has its directory at sector ${directoryStart}, outside the file`);
  const { heads, directoryChain } = replayChains(reader, directoryStart);
  checkDirectoryTree(replayDirectory(reader, directoryChain, heads));
}

/**
 * Replays cfb's `build_full_paths` on the directory's links: the parent of each entry from
 * the child, left and right links (a queue of siblings), then each path by following parents.
 * Throws `CORRUPT` for a link outside the directory, or when the walk would not end.
 */
function checkDirectoryTree(directory: readonly DirectoryLinks[]): void {
  const count = directory.length;
  for (const { left, right, child } of directory)
    for (const link of [left, right, child])
      if (link !== noStream && !(link >= 0 && link < count))
        throw corrupt(`has a directory link to entry ${link}, outside its ${count} entries`);
  const parent: number[] = [];
  const queue: number[] = [];
  // Where each entry was last queued: cfb's `q.lastIndexOf(entry)`.
  const lastQueued: number[] = [];
  for (let index = 0; index < count; index += 1) {
    parent[index] = index;
    queue[index] = index;
    lastQueued[index] = index;
  }
  let left = 0;
  let right = 0;
  let child = 0;
  for (let position = 0; position < queue.length; position += 1) {
    if (queue.length > 8 * count) throw corrupt("has a directory tree cfb would walk forever");
    const index = queue[position] as number;
    ({ left, right, child } = directory[index] as DirectoryLinks);
    if (parent[index] === index) {
      if (left !== noStream && parent[left] !== left) parent[index] = parent[left] as number;
      if (right !== noStream && parent[right] !== right) parent[index] = parent[right] as number;
    }
    if (child !== noStream) parent[child] = index;
    for (const sibling of [left, right])
      if (sibling !== noStream && index !== parent[index]) {
        parent[sibling] = parent[index] as number;
        if ((lastQueued[sibling] as number) < position) {
          lastQueued[sibling] = queue.length;
          queue.push(sibling);
        }
      }
  }
  // cfb's fallback for entries still without a parent uses the last entry's links.
  for (let index = 1; index < count; index += 1)
    if (parent[index] === index) {
      if (right !== noStream && parent[right] !== right) parent[index] = parent[right] as number;
      else if (left !== noStream && parent[left] !== left) parent[index] = parent[left] as number;
    }
  let steps = 0;
  for (let index = 1; index < count; index += 1) {
    if ((directory[index] as DirectoryLinks).type === 0) continue;
    let at = index;
    let depth = 0;
    if (at !== parent[at])
      do {
        at = parent[at] as number;
        steps += 1;
        depth += 1;
        if (depth > count || steps > maximumPathSteps)
          throw corrupt("has a directory tree whose paths loop or nest too deep");
      } while (at !== 0 && parent[at] !== -1 && at !== parent[at]);
    parent[index] = -1;
  }
}

/** A compound file's signature ([MS-CFB] 2.2). */
const signature = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

/** A stream of a compound file: its path (storages joined by `/`, the root's name left out). */
export interface CompoundStream {
  path: string;
  content: Uint8Array;
  /** The size its directory entry declares (cfb cuts the content to it, or has fewer bytes). */
  declaredSize: number;
}

/** What cfb holds as a stream's content (a Buffer, rarely an array of bytes, or nothing). */
function contentBytes(content: unknown): Uint8Array {
  if (content instanceof Uint8Array) return content;
  if (Array.isArray(content)) return Uint8Array.from(content as number[]);
  return new Uint8Array(0);
}

/**
 * The streams of the compound file `bytes`, in cfb's order, read by `cfb` (the library, which
 * the extractor loads at the first compound file and the worker at its start) once
 * {@link checkCompoundFile} found it safe for it within `maxCopiedBytes` of chain copies.
 * Synchronous (cfb takes ~10 ms a MiB): the extractor runs it on the event loop for small
 * files only, else in its worker thread. Throws `UnpackSkip`: `CORRUPT` (no signature, a
 * structure cfb would not read in bounded time, cfb's own failure) or `LIMITS`.
 */
export function readCompoundFile(
  cfb: CfbLibrary,
  bytes: Uint8Array,
  maxCopiedBytes: number,
): CompoundStream[] {
  const file = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!signature.every((byte, index) => file[index] === byte))
    throw new UnpackSkip("CORRUPT", "no compound file signature");
  checkCompoundFile(file, maxCopiedBytes);
  let container: CFB.CFB$Container;
  try {
    container = cfb.parse(file);
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
