import { createHash, randomBytes } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Artifact, artifactFromBytes, artifactFromFile, errorFromSignal } from "@engine/core";
import { UnpackSkip } from "./extractors/extractor.js";
import type { UnpackLimits } from "./unpack-options.js";

/** A member's file name for its artifact (YARA's `filename` external): none when empty. */
function named(filename: string): { filename?: string } {
  const name = filename.slice(0, 255);
  return name.length > 0 ? { filename: name } : {};
}

/** The facts of `artifact` a copy of it (`size` bytes) keeps: its name, its type, its size. */
export function copyFacts(artifact: Artifact, size: number) {
  return {
    ...(artifact.filename ? { filename: artifact.filename } : {}),
    ...(artifact.mimetype ? { mimetype: artifact.mimetype } : {}),
    size,
  };
}

/** A member's content, stored: readable until `dispose()` (and every hold is released). */
export interface StoredMember {
  artifact: Artifact;
  size: number;
  sha256: string;
  dispose(): Promise<void>;
  /**
   * For a member on disk: keeps its file (and the store's directory) past `dispose()` and
   * `close()` until the returned release is called; the last release removes what was let go.
   */
  hold?: () => () => Promise<void>;
}

/** The bytes decoded so far in one unpack, against `maxTotalBytes`. */
export class ByteBudget {
  #used = 0;
  constructor(private readonly maxTotalBytes: number) {}
  /** Bytes decoded so far. */
  get used(): number {
    return this.#used;
  }
  /** Bytes left before `maxTotalBytes`. */
  get remaining(): number {
    return Math.max(0, this.maxTotalBytes - this.#used);
  }
  /** Counts `bytes` more; throws `UnpackSkip` (`maxTotalBytes`) past the bound. */
  take(bytes: number): void {
    this.#used += bytes;
    if (this.#used > this.maxTotalBytes)
      throw new UnpackSkip(
        "LIMITS",
        `the members decode to more than maxTotalBytes (${this.maxTotalBytes} bytes)`,
        "maxTotalBytes",
      );
  }
}

/** Bytes of a member gathered before one write to its temp file. */
const fileBatchBytes = 1024 * 1024;

/**
 * Stores members as they are decoded: in memory up to `memoryLimitBytes`, past that in a
 * private temp directory under random names (never a member's name), each counted against
 * `maxMemberBytes`, the unpack's byte budget and `maxRatio`, and hashed on the way.
 */
export class MemberStore {
  #directory: Promise<string> | undefined;
  /** Holds not yet released on members of this store (see {@link StoredMember.hold}). */
  #holds = 0;
  /** Set by close() while holds are out: the last release removes the directory. */
  #closed = false;

  constructor(
    private readonly options: {
      limits: UnpackLimits;
      budget: ByteBudget;
      memoryLimitBytes: number;
      temporaryDirectory?: string | undefined;
      /** Stops a store between chunks (the unpack's deadline). */
      signal?: AbortSignal | undefined;
    },
  ) {}

  /**
   * Reads `content` whole into a stored member. Throws `UnpackSkip` (`LIMITS`) at the first
   * byte past a bound, having removed what it wrote; `compressedBytes` is what the content
   * takes in its container (for the ratio).
   */
  async store(
    content: AsyncIterable<Uint8Array>,
    info: { filename: string; compressedBytes: number },
  ): Promise<StoredMember> {
    const hash = createHash("sha256");
    // In memory up to memoryLimitBytes; past it, chunks go to the file a batch at a time.
    const chunks: Uint8Array[] = [];
    let pendingBytes = 0;
    let size = 0;
    let file: { handle: FileHandle; path: string } | undefined;
    const flush = async (): Promise<void> => {
      if (!file || chunks.length === 0) return;
      await file.handle.writev(chunks);
      chunks.length = 0;
      pendingBytes = 0;
    };
    try {
      const { signal } = this.options;
      for await (const chunk of content) {
        if (signal?.aborted) throw errorFromSignal(signal, "unpack");
        size += chunk.byteLength;
        this.#check(size, chunk.byteLength, info.compressedBytes);
        hash.update(chunk);
        chunks.push(chunk);
        pendingBytes += chunk.byteLength;
        if (!file && size > this.options.memoryLimitBytes) file = await this.#openFile();
        if (file && pendingBytes >= fileBatchBytes) await flush();
      }
      await flush();
      const sha256 = hash.digest("hex");
      if (!file) {
        const bytes = Buffer.concat(chunks, size);
        return {
          artifact: artifactFromBytes(bytes, { ...named(info.filename), sha256 }),
          size,
          sha256,
          dispose: async () => {},
        };
      }
      await file.handle.close();
      return this.#onDisk(file.path, {
        artifact: artifactFromFile(file.path, { ...named(info.filename), sha256, size }),
        size,
        sha256,
      });
    } catch (error) {
      if (file) {
        await file.handle.close().catch(() => {});
        await rm(file.path, { force: true });
      }
      throw error;
    }
  }

  /**
   * Removes the temp directory and whatever is left in it, or, while members are held, lets
   * the last release do it.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#holds === 0) await this.#removeDirectory();
  }

  async #removeDirectory(): Promise<void> {
    const directory = await this.#directory?.catch(() => undefined);
    if (directory) await rm(directory, { recursive: true, force: true });
  }

  /** A member in the file at `path`: removed at `dispose()`, or at its last release if held. */
  #onDisk(path: string, member: Omit<StoredMember, "dispose" | "hold">): StoredMember {
    let holds = 0;
    let disposed = false;
    const remove = () => rm(path, { force: true });
    const hold = () => {
      holds += 1;
      this.#holds += 1;
      let released = false;
      return async (): Promise<void> => {
        if (released) return;
        released = true;
        holds -= 1;
        this.#holds -= 1;
        try {
          if (disposed && holds === 0) await remove();
        } finally {
          if (this.#closed && this.#holds === 0) await this.#removeDirectory();
        }
      };
    };
    const dispose = async (): Promise<void> => {
      disposed = true;
      if (holds === 0) await remove();
    };
    return { ...member, dispose, hold };
  }

  #check(size: number, added: number, compressedBytes: number): void {
    const { limits, budget } = this.options;
    if (size > limits.maxMemberBytes)
      throw new UnpackSkip(
        "LIMITS",
        `a member decodes to more than maxMemberBytes (${limits.maxMemberBytes} bytes)`,
        "maxMemberBytes",
      );
    budget.take(added);
    if (size > limits.ratioFloorBytes && size / Math.max(compressedBytes, 1) > limits.maxRatio)
      throw new UnpackSkip(
        "LIMITS",
        `a member decodes to more than ${limits.maxRatio} times its ${compressedBytes} bytes (maxRatio)`,
        "maxRatio",
      );
  }

  async #openFile(): Promise<{ handle: FileHandle; path: string }> {
    this.#directory ??= mkdtemp(
      join(this.options.temporaryDirectory ?? tmpdir(), "engine-unpack-"),
    );
    const path = join(await this.#directory, randomBytes(12).toString("hex"));
    return { handle: await open(path, "wx", 0o600), path };
  }
}
