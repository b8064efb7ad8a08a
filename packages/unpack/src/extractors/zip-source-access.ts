import { type FileHandle, open } from "node:fs/promises";
import { errorFromSignal } from "@engine/core";
import type { ContainerSource } from "./extractor.js";

/** Bytes read at a time when a range is streamed (256 KiB). */
const chunkBytes = 256 * 1024;

/** Bytes of a file read at once for small reads near one another (64 KiB). */
const blockBytes = 64 * 1024;

/**
 * Longest stretch the reading of a zip holds the event loop, in ms: reads of bytes in memory
 * never leave the microtask queue, so a scan of them would keep the deadline's timer from
 * firing (an 8 MiB zip of signatures held it 5 s).
 */
const turnMs = 5;

/** `PK` signatures looked at in one batch of {@link ZipSourceAccess.signatures}. */
const signaturesPerBatch = 4096;

/** The first two bytes of every zip signature. */
const pk = Buffer.from("PK", "latin1");

/**
 * Pushes to `found` the `wanted` signatures of `view` from `from` on, as `[base + offset,
 * type]`, looking at {@link signaturesPerBatch} `PK`s at most (none starting in the last 3
 * bytes: the next chunk's seam has them). Returns where to go on from, or -1 at the end.
 * (A plain loop, kept out of the async generator so that it runs as fast as a loop can.)
 */
function collectSignatures(
  view: Buffer,
  from: number,
  base: number,
  wanted: ReadonlySet<number>,
  found: Array<[number, number]>,
): number {
  let at = view.indexOf(pk, from);
  for (let seen = 0; at >= 0 && at + 4 <= view.length; seen += 1) {
    if (seen === signaturesPerBatch) return at;
    const type = (view[at + 2] as number) | ((view[at + 3] as number) << 8);
    if (wanted.has(type)) found.push([base + at, type]);
    at = view.indexOf(pk, at + 1);
  }
  return -1;
}

/**
 * Positional reads of a zip being extracted: views of the bytes when they are in memory, reads
 * through one file handle when it is a file (a zip is read out of order: end record, central
 * directory, local headers, data). Close it when done.
 */
export class ZipSourceAccess {
  /** The last block of the file read for small reads. */
  private block: { start: number; bytes: Uint8Array } | undefined;
  /** When the event loop last had a turn (performance.now()). */
  private lastTurn = performance.now();

  private constructor(
    /** Size of the source in bytes. */
    readonly size: number,
    private readonly bytes: Uint8Array | undefined,
    private readonly handle: FileHandle | undefined,
    private readonly signal: AbortSignal,
  ) {}

  /** Opens `source` for positional reads. */
  static async open(source: ContainerSource, signal: AbortSignal): Promise<ZipSourceAccess> {
    const { artifact } = source;
    if (artifact.path === undefined) {
      const bytes = await artifact.bytes({ signal });
      return new ZipSourceAccess(bytes.byteLength, bytes, undefined, signal);
    }
    const handle = await open(artifact.path, "r");
    try {
      const { size } = await handle.stat();
      return new ZipSourceAccess(size, undefined, handle, signal);
    } catch (error) {
      await handle.close();
      throw error;
    }
  }

  /** Up to `length` bytes from `offset` (fewer at the end of the source, none past it). */
  async read(offset: number, length: number): Promise<Uint8Array> {
    const start = Math.max(0, Math.min(offset, this.size));
    const end = Math.max(start, Math.min(offset + Math.max(0, length), this.size));
    if (this.bytes) return this.bytes.subarray(start, end);
    if (this.signal.aborted) throw errorFromSignal(this.signal, "unpack");
    // Small reads (headers, records) come in runs close together: served from one block.
    if (end - start <= blockBytes / 4) {
      if (
        !this.block ||
        start < this.block.start ||
        end > this.block.start + this.block.bytes.length
      )
        this.block = {
          start,
          bytes: await this.readFile(start, Math.min(this.size, start + blockBytes)),
        };
      const from = start - this.block.start;
      return this.block.bytes.subarray(from, from + (end - start));
    }
    return this.readFile(start, end);
  }

  /** The file's bytes from `start` to `end`. */
  private async readFile(start: number, end: number): Promise<Uint8Array> {
    // Unsafe is fine: only the bytes read are returned.
    const buffer = Buffer.allocUnsafe(end - start);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await (this.handle as FileHandle).read(
        buffer,
        filled,
        buffer.length - filled,
        start + filled,
      );
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  }

  /**
   * Lets the event loop turn (setImmediate) when the reading has held it for {@link turnMs},
   * then throws if the signal fired (the deadline, the caller's abort). Call it in any loop
   * over the bytes or their records.
   */
  async breathe(): Promise<void> {
    if (performance.now() - this.lastTurn >= turnMs) {
      await new Promise((resolve) => setImmediate(resolve));
      this.lastTurn = performance.now();
    }
    if (this.signal.aborted) throw errorFromSignal(this.signal, "unpack");
  }

  /**
   * The bytes from `start` to `end` (or the end of the source), in chunks, stopping at the
   * signal and letting the event loop turn between chunks ({@link breathe}).
   */
  async *chunks(start: number, end: number = this.size): AsyncGenerator<Uint8Array> {
    const last = Math.min(end, this.size);
    for (let offset = Math.max(0, start); offset < last; offset += chunkBytes) {
      await this.breathe();
      const chunk = await this.read(offset, Math.min(chunkBytes, last - offset));
      if (chunk.byteLength === 0) return;
      yield chunk;
    }
  }

  /**
   * The zip signatures (`PK` and two bytes: `0x0403` a local header, `0x0605` an end record,
   * ...) from `start` on, in order, as `[offset, type]` pairs, in batches of at most
   * {@link signaturesPerBatch} per chunk read (a zip made of signatures costs no more than a
   * pass over its bytes); chunks overlap by 3 bytes, so a file is never held whole. The event
   * loop turns every few ms, within a chunk too (a chunk of signatures holds 65,536), and the
   * signal is checked then.
   */
  async *signatures(types: readonly number[], start = 0): AsyncGenerator<Array<[number, number]>> {
    const wanted = new Set(types);
    // The last 3 bytes of the previous chunk: a signature starting there ends in this one.
    let carried: Buffer = Buffer.alloc(0);
    let chunkStart = start;
    for await (const chunk of this.chunks(start)) {
      const view = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      let found: Array<[number, number]> = [];
      if (carried.length > 0) {
        const seam = Buffer.concat([carried, view.subarray(0, 3)]);
        for (let at = seam.indexOf(pk); at >= 0 && at < carried.length; ) {
          const type = at + 4 <= seam.length ? seam.readUInt16LE(at + 2) : -1;
          if (wanted.has(type)) found.push([chunkStart - carried.length + at, type]);
          at = seam.indexOf(pk, at + 1);
        }
      }
      for (let at = 0; at >= 0; ) {
        at = collectSignatures(view, at, chunkStart, wanted, found);
        if (found.length > 0) yield found;
        found = [];
        if (at >= 0) await this.breathe();
      }
      carried = Buffer.from(view.subarray(Math.max(0, view.length - 3)));
      chunkStart += view.length;
    }
  }

  /** Releases the file handle (if any). */
  async close(): Promise<void> {
    await this.handle?.close();
  }
}
