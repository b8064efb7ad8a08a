import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import { artifactFromBytes } from "@engine/core";
import { afterAll, describe, expect, it } from "vitest";
import { compileInWorker, type PoolRules, YaraWorkerPool } from "../src/yara-worker-pool.js";

// YARA-X's WebAssembly build (1.20.0) traps after some thousands of scans in one instance
// (6,347-6,471 in a worker here; `unreachable`, then `memory access out of bounds` at every
// scan after it). A real worker must ask to be replaced well before: this runs real scans
// (~5 ms each) until it does.
const require = createRequire(import.meta.url);
const sources = [
  { namespace: "r", source: 'rule never_matches { strings: $a = "never-here" condition: $a }' },
];
let pool: YaraWorkerPool | undefined;
afterAll(async () => {
  await pool?.close();
});

describe("a real YARA-X worker", () => {
  it("asks to be replaced before its instance wears out, and no scan fails across the swap", async () => {
    const directory = dirname(require.resolve("@virustotal/yara-x/package.json"));
    const { WebAssembly: wasm } = globalThis as unknown as {
      WebAssembly: { compile(bytes: Uint8Array): Promise<object> };
    };
    const module = await wasm.compile(await readFile(join(directory, "pkg", "yara_x_js_bg.wasm")));
    const { worker, report } = await compileInWorker(module, sources, {});
    expect(report).toMatchObject({ accepted: [0], errors: [] });
    let spawned = 0;
    pool = await YaraWorkerPool.start({ module, sources, externals: {} }, worker, 1, {
      maxQueuedScans: 8,
      recycleAfterScans: Number.MAX_SAFE_INTEGER, // only the worker's own word counts here
      spawnWorker: (rules: PoolRules) => {
        spawned += 1;
        return new Worker(new URL("../dist/yara-worker.js", import.meta.url), {
          workerData: { module: rules.module },
        });
      },
    });
    const bytes = artifactFromBytes(Buffer.from("a few bytes"));
    let scans = 0;
    while (spawned === 0 && scans < 6000) {
      await pool.scan(bytes, {}, 1024, new AbortController().signal);
      scans += 1;
    }
    expect(spawned).toBe(1);
    expect(scans).toBeLessThan(4000); // the trap came at 6,347 at the earliest
  }, 120_000);
});
