import { createHash } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Artifact, artifactFromBytes, artifactFromFile } from "@engine/core";

/** Bytes of a scan API body kept in memory; past this it goes to a private temp file. 1 MiB. */
export const heldBodyMemoryBytes = 1024 * 1024;

/** A scan API body held whole, hashed by the engine; `dispose()` removes its temp file. */
export interface HeldBody {
  /** The body as an artifact whose sha256 the engine computed (the result cache's key). */
  artifact: Artifact;
  sha256: string;
  dispose(): Promise<void>;
}

/** A temp file being written, and its first error (kept: an error must never go unheard). */
interface Spill {
  directory: string;
  path: string;
  file: WriteStream;
  failure?: Error;
}

/** Writes `chunk`, waiting while the file asks to (its back-pressure); throws its error. */
async function write(spill: Spill, chunk: Uint8Array): Promise<void> {
  if (spill.failure) throw spill.failure;
  if (!spill.file.write(chunk)) await once(spill.file, "drain");
}

/** A private temp file for a body past the memory bound. */
async function openSpill(): Promise<Spill> {
  const directory = await mkdtemp(join(tmpdir(), "engine-scan-body-"));
  const path = join(directory, "body");
  const spill: Spill = { directory, path, file: createWriteStream(path, { mode: 0o600 }) };
  spill.file.on("error", (error) => {
    spill.failure ??= error;
  });
  return spill;
}

/**
 * Reads a scan API body whole, hashing it on the way: in memory up to
 * {@link heldBodyMemoryBytes}, past that in a private temp file (mode 0600, in its own
 * directory, removed by `dispose()` and on every error). The hash is the engine's own, so the
 * result cache may key on it as on a bounty's download; the client declares none. The body's
 * own bounds apply while it is read (its size cap, the request's signal and deadline, through
 * `signal`).
 */
export async function holdBody(body: Artifact, signal: AbortSignal): Promise<HeldBody> {
  const info = {
    ...(body.filename ? { filename: body.filename } : {}),
    ...(body.mimetype ? { mimetype: body.mimetype } : {}),
  };
  const hash = createHash("sha256");
  const chunks: Uint8Array[] = [];
  let size = 0;
  let spill: Spill | undefined;
  const dispose = async () => {
    spill?.file.destroy();
    if (spill) await rm(spill.directory, { recursive: true, force: true });
  };
  try {
    for await (const chunk of body.stream({ signal }) as AsyncIterable<Uint8Array>) {
      hash.update(chunk);
      size += chunk.byteLength;
      if (spill) await write(spill, chunk);
      else chunks.push(chunk);
      if (!spill && size > heldBodyMemoryBytes) {
        spill = await openSpill();
        for (const held of chunks.splice(0)) await write(spill, held);
      }
    }
    const sha256 = hash.digest("hex");
    if (!spill) {
      const bytes = Buffer.concat(chunks, size);
      return { artifact: artifactFromBytes(bytes, { ...info, sha256 }), sha256, dispose };
    }
    const { file, path } = spill;
    await new Promise<void>((resolve, reject) => {
      if (spill?.failure) return reject(spill.failure);
      file.once("error", reject);
      file.end(resolve);
    });
    return { artifact: artifactFromFile(path, { ...info, sha256, size }), sha256, dispose };
  } catch (error) {
    await dispose();
    throw error;
  }
}
