import { Readable } from "node:stream";
import type { Artifact } from "@engine/core";
import { type FetchedArtifact, toMemory, toTemporaryFile } from "../net/artifact-sinks.js";

/** Bytes of a scan API body kept in memory; past this it goes to a private temp file. 1 MiB. */
export const heldBodyMemoryBytes = 1024 * 1024;

/**
 * Reads a scan API body whole, hashing it on the way, with the sinks a download uses: in
 * memory up to {@link heldBodyMemoryBytes}, past that in a private temp file (mode 0600,
 * removed by `dispose()` and on every error). The hash is the engine's own, so the result
 * cache may key on it as on a bounty's download; the client declares none. At most
 * `limits.maxBytes` (the temp file in `limits.temporaryDirectory`, default the system's), and the body's own bounds apply while it is read (the request's signal and
 * deadline, through `signal`).
 */
export async function holdBody(
  body: Artifact,
  limits: { maxBytes: number; temporaryDirectory?: string },
  signal: AbortSignal,
): Promise<FetchedArtifact> {
  const info = {
    ...(body.filename ? { filename: body.filename } : {}),
    ...(body.mimetype ? { mimetype: body.mimetype } : {}),
  };
  const chunks = (body.stream({ signal }) as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const held: Uint8Array[] = [];
  let size = 0;
  for (let next = await chunks.next(); !next.done; next = await chunks.next()) {
    held.push(next.value);
    size += next.value.byteLength;
    if (size > heldBodyMemoryBytes) {
      // Past the memory bound: what was held, then the rest, into a temp file.
      const whole = async function* () {
        yield* held.splice(0);
        for (let rest = await chunks.next(); !rest.done; rest = await chunks.next())
          yield rest.value;
      };
      return toTemporaryFile(Readable.from(whole()), limits, signal, info);
    }
  }
  return toMemory(held, limits.maxBytes, info);
}
