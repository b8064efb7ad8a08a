import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Duplex, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type Artifact, artifactFromBytes, artifactFromFile } from "@engine/core";
import type { AddressPolicy } from "./address-policy.js";
import { tooLarge } from "./fetch-errors.js";

/** Where artifacts may come from, and how much of them. */
export interface FetchPolicy extends AddressPolicy {
  allowedHosts: readonly string[];
  allowFileUris: boolean;
  maxBytes: number;
  temporaryDirectory?: string;
  /**
   * Artifacts whose size is known up front and at most this many bytes are kept in memory
   * instead of a temp file (each file costs several file-system trips). Default 1 MiB.
   */
  memoryLimitBytes?: number;
}

/** A downloaded artifact on disk; `dispose()` deletes it (also call it on every error path). */
export interface FetchedArtifact {
  artifact: Artifact;
  bytes: number;
  sha256: string;
  dispose(): Promise<void>;
}

/** Counts and hashes the bytes that pass, failing past `maxBytes`. */
class ByteCounter extends Transform {
  bytes = 0;
  readonly hash = createHash("sha256");
  constructor(private readonly maxBytes: number) {
    super();
  }
  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null, data?: Buffer) => void,
  ): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(tooLarge(this.maxBytes));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

let fileCounter = 0;

/**
 * Streams `source` (through `decoders`, a content coding) into a private temp file (mode 0600)
 * in the fetcher's directory, with the size cap and the sha256 computed on the way; the file is
 * removed on every error path and by `dispose()`.
 */
export async function toTemporaryFile(
  source: NodeJS.ReadableStream,
  policy: Pick<FetchPolicy, "maxBytes" | "temporaryDirectory"> & { sharedDirectory?: string },
  signal: AbortSignal,
  info: { filename?: string; mimetype?: string },
  decoders: Duplex[] = [],
): Promise<FetchedArtifact> {
  // One private directory per engine (or per download without one); one file per artifact.
  const directory =
    policy.sharedDirectory ??
    (await mkdtemp(join(policy.temporaryDirectory ?? tmpdir(), "engine-artifact-")));
  fileCounter += 1;
  const path = join(directory, `artifact-${process.pid}-${fileCounter}`);
  const dispose = () =>
    rm(policy.sharedDirectory ? path : directory, { recursive: true, force: true });
  try {
    const counter = new ByteCounter(policy.maxBytes);
    // Decoded first (a content coding): the cap and the hash are on the artifact itself.
    await pipeline([source, ...decoders, counter, createWriteStream(path, { mode: 0o600 })], {
      signal,
    });
    const sha256 = counter.hash.digest("hex");
    return {
      artifact: artifactFromFile(path, { ...info, sha256, size: counter.bytes }),
      bytes: counter.bytes,
      sha256,
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Reads a small body whose size is known into memory, with the same cap and hash. */
export async function toMemory(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  maxBytes: number,
  info: { filename?: string; mimetype?: string },
): Promise<FetchedArtifact> {
  // The chunks are the body's own (fresh per socket read): kept as they are and copied once,
  // into the artifact (a 1 MB download was copied twice, which showed in GC time).
  const chunks: Uint8Array[] = [];
  let total = 0;
  const hash = createHash("sha256");
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(maxBytes);
    hash.update(chunk);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks, total);
  const sha256 = hash.digest("hex");
  return {
    artifact: artifactFromBytes(bytes, { ...info, sha256 }),
    bytes: bytes.length,
    sha256,
    dispose: async () => {},
  };
}
