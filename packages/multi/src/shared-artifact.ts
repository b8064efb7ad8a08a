import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { type Artifact, artifactFromBytes, artifactFromFile, errorFromSignal } from "@engine/core";

/** An artifact every backend can read, and how to clean up after it. */
export interface SharedArtifact {
  artifact: Artifact;
  dispose(): Promise<void>;
}

/**
 * Makes an artifact readable by several backends while reading its source once. Bytes and files
 * are already re-readable (backends share the bytes or the path). A stream is read once: into
 * memory when its declared size is at most `memoryLimitBytes`, otherwise spooled to a private
 * temporary file (mode 0600) that is deleted by `dispose()`, so a 1 GB upload never sits in
 * memory and ClamAV still streams it from disk.
 */
export async function shareArtifact(
  artifact: Artifact,
  options: {
    memoryLimitBytes: number;
    temporaryDirectory?: string | undefined;
    signal: AbortSignal;
  },
): Promise<SharedArtifact> {
  if (artifact.replayable) return { artifact, dispose: async () => {} };
  const info = {
    ...(artifact.filename ? { filename: artifact.filename } : {}),
    ...(artifact.mimetype ? { mimetype: artifact.mimetype } : {}),
    ...(artifact.sha256 ? { sha256: artifact.sha256 } : {}),
  };
  if (artifact.size !== undefined && artifact.size <= options.memoryLimitBytes) {
    const bytes = await artifact.bytes({ signal: options.signal });
    return { artifact: artifactFromBytes(bytes, info), dispose: async () => {} };
  }
  const directory = await mkdtemp(join(options.temporaryDirectory ?? tmpdir(), "engine-multi-"));
  const dispose = () => rm(directory, { recursive: true, force: true });
  try {
    const path = join(directory, "artifact");
    await pipeline(
      artifact.stream({ signal: options.signal }),
      createWriteStream(path, { mode: 0o600 }),
    );
    return { artifact: artifactFromFile(path, info), dispose };
  } catch (error) {
    await dispose();
    if (options.signal.aborted) throw errorFromSignal(options.signal, "multi");
    throw error;
  }
}
