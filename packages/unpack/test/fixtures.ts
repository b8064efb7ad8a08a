import { gzipSync } from "node:zlib";
import { eicarBytes } from "@engine/core";
import { pack } from "tar-stream";

/** A tar of `files` (name -> content), made with tar-stream's packer. */
export async function tarOf(files: Record<string, Uint8Array | string>): Promise<Buffer> {
  const packer = pack();
  const chunks: Buffer[] = [];
  packer.on("data", (chunk: unknown) => void chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve) => packer.on("end", () => resolve()));
  for (const [name, content] of Object.entries(files)) {
    const bytes = typeof content === "string" ? Buffer.from(content) : Buffer.from(content);
    await new Promise<void>((resolve, reject) =>
      packer.entry({ name, size: bytes.length }, bytes, (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  }
  packer.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** EICAR inside `levels` gzip layers. */
export function gzipLayers(content: Uint8Array, levels: number): Buffer {
  let bytes = Buffer.from(content);
  for (let level = 0; level < levels; level += 1) bytes = gzipSync(bytes);
  return bytes;
}

export { eicarBytes };

/**
 * The longest the event loop was held while `run` ran, in ms: the longest gap between two
 * ticks of a `tickMs` timer (default 1 ms), the stretch from the last tick to the end included
 * (a timer that never fired reads the whole run).
 */
export async function longestStall(run: () => Promise<unknown>, tickMs = 1): Promise<number> {
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, tickMs);
  try {
    await run();
  } finally {
    clearInterval(ticker);
  }
  return Math.max(longest, performance.now() - last);
}

/**
 * The least of the {@link longestStall}s of up to `attempts` runs (default 3), stopping at the
 * first under `boundMs`. Code that holds the event loop does so on every run; a machine whose 2
 * cores run several suites at once deschedules the process now and then, which does not repeat.
 */
export async function leastStall(
  run: () => Promise<unknown>,
  { boundMs, tickMs = 1, attempts = 3 }: { boundMs: number; tickMs?: number; attempts?: number },
): Promise<number> {
  let least = Number.POSITIVE_INFINITY;
  for (let attempt = 0; attempt < attempts && least >= boundMs; attempt += 1)
    least = Math.min(least, await longestStall(run, tickMs));
  return least;
}
