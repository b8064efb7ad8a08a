import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createYaraScanner } from "../src/index.js";
import { loadNativeEngine } from "../src/native-engine.js";
import { makeFifo, releaseFifoReaders } from "./fifo-files.js";

// The native engine needs @engine/yara-native built against libyara-dev, which
// scripts/install-test-dependencies.sh installs.
const directories: string[] = [];
let fifo: string | undefined;
afterEach(async () => {
  // libyara blocked in open(2) on the FIFO (the bug) is let go, or the run would never exit.
  if (fifo) releaseFifoReaders(fifo);
  fifo = undefined;
  await Promise.all(
    directories.splice(0).map((path) => rm(path, { recursive: true, force: true })),
  );
});

async function directoryWithIncludes(): Promise<{ fifo: string; rule: string }> {
  const directory = await mkdtemp(join(tmpdir(), "engine-yara-native-includes-"));
  directories.push(directory);
  fifo = join(directory, "pipe.yar");
  makeFifo(fifo);
  const rule = join(directory, "target.yar");
  await writeFile(rule, "rule included { condition: true }\n");
  return { fifo, rule };
}

describe("the native engine and include", () => {
  it("never reads an include itself: libyara's includes are off (a FIFO blocked a pool thread for good)", {
    timeout: 5_000,
  }, async () => {
    const native = await loadNativeEngine();
    const paths = await directoryWithIncludes();
    const sources = [
      `rule a { condition: true } include "${paths.fifo}"`,
      `rule b { condition: true } include "${paths.rule}"`,
    ];
    const compiled = await native.compile(["a", "b"], sources, {}, true);
    expect(compiled.accepted).toEqual([]);
    expect(compiled.diagnostics).toEqual([
      expect.objectContaining({ index: 0, level: 0, message: "includes are disabled" }),
      expect.objectContaining({ index: 1, level: 0, message: "includes are disabled" }),
    ]);
  });

  it("refuses such an include before libyara sees it, and loads the other files", async () => {
    const paths = await directoryWithIncludes();
    await using scanner = createYaraScanner({
      engine: "native",
      rules: {
        stray: `rule a { condition: true } include "${paths.fifo}"`,
        good: "rule good { condition: true }",
      },
      onDiagnostics: () => {},
    });
    await scanner.setup?.();
    expect(scanner.diagnostics.map((diagnostic) => diagnostic.code)).toEqual([
      "include-not-on-own-line",
    ]);
    expect(scanner.ruleFileCount).toBe(1);
  });
});
