import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { eicarBytes } from "@engine/core";

/** Writes `files` (relative path -> content) into a fresh temp directory. */
export async function ruleDirectory(
  files: Record<string, string>,
): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), "engine-yara-rules-"));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(path, name)), { recursive: true });
    await writeFile(join(path, name), content);
  }
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * Runs `work` while a 5 ms ticker measures how late the event loop lets it fire; resolves
 * with the work's result and the worst lag in ms.
 */
export async function withEventLoopLag<T>(
  work: () => Promise<T>,
): Promise<{ result: T; worstLagMs: number }> {
  let worstLagMs = 0;
  let last = performance.now();
  const ticker = setInterval(() => {
    const now = performance.now();
    worstLagMs = Math.max(worstLagMs, now - last - 5);
    last = now;
  }, 5);
  try {
    return { result: await work(), worstLagMs };
  } finally {
    clearInterval(ticker);
  }
}

/** A rule that loops for ever on large inputs, and an EICAR rule to prove the next scan works. */
export function pathologicalRules(): Record<string, string> {
  const eicarHex = [...eicarBytes()].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
  return {
    "slow.yar":
      "rule slow { condition: for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != uint8(j) + 1 ) ) }",
    "eicar.yar": `rule eicar { strings: $a = { ${eicarHex} } condition: $a }`,
  };
}
