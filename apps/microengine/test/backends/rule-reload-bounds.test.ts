import { execFileSync } from "node:child_process";
import { mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromBytes } from "@engine/core";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { buildBackends } from "../../src/backends/build-backends.js";
import { loadConfig } from "../../src/config/config.js";

// Second audit, items 9 and 13, as the engine meets them: a rule file that includes a FIFO
// blocked the reload for good (later SIGHUPs queued behind it, the cache stayed bypassed,
// SIGTERM never exited), and includes through symlinks to `.` expanded 2^n times.
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function rulesDirectory(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), "engine-reload-bounds-"));
  cleanups.push(() => rm(directory, { recursive: true, force: true }));
  await writeFile(join(directory, "word.yar"), 'rule Word { strings: $a = "WORD" condition: $a }');
  return directory;
}

async function engineOn(directory: string) {
  const logs: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
  const backends = await buildBackends(
    loadConfig({ ENGINE_BACKENDS: "yara", RULES_DIR: directory, YARA_ENGINE: "wasm" }),
    logger,
    { resultCache: true },
  );
  cleanups.push(() => backends.dispose());
  return { backends, logs };
}

const within = <T>(work: Promise<T>, ms: number): Promise<T> =>
  Promise.race([
    work,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms)),
  ]);

describe("reloads that no rule file can hold (second audit, items 9 and 13)", () => {
  it("refuses a rule file that includes a FIFO at start and at each SIGHUP, promptly, and says when a reload waits for another", async () => {
    const directory = await rulesDirectory();
    const { backends, logs } = await within(engineOn(directory), 10_000);
    execFileSync("mkfifo", [join(directory, "pipe")]);
    await writeFile(join(directory, "held.yar"), 'include "pipe"\nrule Held { condition: true }');
    // Two SIGHUPs at once: the second waits for the first, and says so.
    const [first, second] = await within(
      Promise.all([backends.reload(), backends.reload()]),
      5_000,
    );
    expect([first, second]).toEqual([false, false]); // strict: the old rules stay
    expect(logs.join("\n")).toMatch(/a reload is already running/);
    expect(logs.join("\n")).toMatch(/YARA rules NOT reloaded/);
    // The last good rules still answer, and the cache is not left bypassed.
    const word = await backends.scanner.scan(artifactFromBytes("a WORD here"));
    expect(word.verdict).toBe("malicious");
    await within(backends.dispose(), 5_000);
  });

  it("ends includes through two symlinks to '.' at the depth bound instead of expanding them 2^29 times", async () => {
    const directory = await rulesDirectory();
    const nest = join(directory, "nest");
    await rm(nest, { recursive: true, force: true });
    execFileSync("mkdir", [nest]);
    await symlink(".", join(nest, "a"));
    await symlink(".", join(nest, "b"));
    let text = "rule Leaf { condition: false }";
    for (let level = 29; level >= 1; level -= 1)
      await writeFile(join(nest, `level${level}.inc`), text);
    for (let level = 1; level < 29; level += 1)
      await writeFile(
        join(nest, `level${level}.inc`),
        `include "a/level${level + 1}.inc"\ninclude "b/level${level + 1}.inc"`,
      );
    // (a rule of its own too: a file of includes only is an index file, skipped under RULES_DIR)
    text = 'include "nest/level1.inc"\nrule Deep { condition: false }';
    await writeFile(join(directory, "deep.yar"), text);
    const { backends, logs } = await within(engineOn(directory), 10_000);
    // The deep one is skipped with a diagnostic naming the bound; the other rules load.
    expect(logs.join("\n")).toMatch(/include-too-deep/);
    expect((await backends.scanner.scan(artifactFromBytes("a WORD here"))).verdict).toBe(
      "malicious",
    );
  });
});
