import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Worker } from "node:worker_threads";
import {
  artifactFromBytes,
  BackendUnavailableError,
  eicarBytes,
  OverloadedError,
} from "@engine/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { compileInWorker, type PoolRules, YaraWorkerPool } from "../src/yara-worker-pool.js";

const require = createRequire(import.meta.url);
const eicarHex = [...eicarBytes()].map((byte) => byte.toString(16).padStart(2, "0")).join(" ");
const sources = [
  { namespace: "r", source: `rule eicar { strings: $a = { ${eicarHex} } condition: $a }` },
];

async function compiledModule(): Promise<object> {
  const directory = dirname(require.resolve("@virustotal/yara-x/package.json"));
  const bytes = await readFile(join(directory, "pkg", "yara_x_js_bg.wasm"));
  const { WebAssembly: wasm } = globalThis as unknown as {
    WebAssembly: { compile(bytes: Uint8Array): Promise<object> };
  };
  return wasm.compile(bytes);
}

const pools: YaraWorkerPool[] = [];
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close();
});

async function poolOf(options: Parameters<typeof YaraWorkerPool.start>[3]) {
  const module = await compiledModule();
  const { worker } = await compileInWorker(module, sources, {});
  const pool = await YaraWorkerPool.start({ module, sources, externals: {} }, worker, 1, options);
  pools.push(pool);
  return { pool, first: worker };
}

/** A worker that dies before it compiles anything: a replacement that fails. */
const dyingWorker = () => new Worker("process.exit(3)", { eval: true });

describe("the YARA worker pool heals", () => {
  it("keeps retrying a replacement with backoff, fails scans at once while it has no worker, and comes back", async () => {
    let failuresLeft = 4;
    let realSpawns = 0;
    const { pool, first } = await poolOf({
      maxQueuedScans: 8,
      retryDelayMs: 20,
      spawnWorker: (rules: PoolRules) => {
        if (failuresLeft > 0) {
          failuresLeft -= 1;
          return dyingWorker();
        }
        realSpawns += 1;
        return new Worker(new URL("../dist/yara-worker.js", import.meta.url), {
          workerData: { module: rules.module },
        });
      },
    });
    expect(pool.status()).toMatchObject({ workers: 1, size: 1 });
    await first.terminate(); // the only worker dies (out of memory, a crash)
    await vi.waitFor(() => expect(pool.status().lastFailure).toMatch(/exited with code 3/));
    expect(pool.status().workers).toBe(0);
    // No worker: a scan fails now with a typed error instead of waiting for its deadline.
    await expect(
      pool.scan(artifactFromBytes(eicarBytes()), {}, 1024, new AbortController().signal),
    ).rejects.toBeInstanceOf(BackendUnavailableError);
    // Four failed starts (20, 40, 80, 160 ms apart), then a worker again: the pool never gives up.
    await vi.waitFor(() => expect(pool.status().workers).toBe(1), { timeout: 5000 });
    expect(failuresLeft).toBe(0);
    expect(realSpawns).toBe(1);
    expect(pool.status().lastFailure).toBeUndefined();
    const matches = await pool.scan(
      artifactFromBytes(eicarBytes()),
      {},
      1024,
      new AbortController().signal,
    );
    expect(matches.map((match) => match.identifier)).toEqual(["eicar"]);
  });

  it("bounds its queue: one scan past maxQueuedScans is refused with OverloadedError", async () => {
    const { pool } = await poolOf({ maxQueuedScans: 2 });
    const signal = new AbortController().signal;
    const big = artifactFromBytes(Buffer.alloc(8 * 1024 * 1024, 0x41));
    const running = [pool.scan(big, {}, 16 * 1024 * 1024, signal)];
    // The first scan holds the only worker; two may wait.
    running.push(pool.scan(big, {}, 16 * 1024 * 1024, signal));
    running.push(pool.scan(big, {}, 16 * 1024 * 1024, signal));
    expect(pool.status()).toMatchObject({ busy: 1, queued: 2, maxQueued: 2 });
    await expect(pool.scan(big, {}, 16 * 1024 * 1024, signal)).rejects.toBeInstanceOf(
      OverloadedError,
    );
    await expect(Promise.all(running)).resolves.toHaveLength(3);
    expect(pool.status()).toMatchObject({ busy: 0, queued: 0 });
  });
});

/** A pool of one around `first` (a worker of the test's own). */
async function poolAround(first: Worker, options: Parameters<typeof YaraWorkerPool.start>[3]) {
  const module = await compiledModule();
  const pool = await YaraWorkerPool.start({ module, sources, externals: {} }, first, 1, options);
  pools.push(pool);
  return pool;
}

/** A worker that compiles nothing and answers every scan with `reply` (a JS expression). */
function answeringWorker(reply: string): Worker {
  return new Worker(
    `const { parentPort } = require("node:worker_threads");
     parentPort.on("message", (request) => {
       if (request.type === "scan") parentPort.postMessage(${reply});
     });`,
    { eval: true },
  );
}

/** A real YARA worker, counted. */
function countedSpawn(counter: { spawned: number }) {
  return (rules: PoolRules) => {
    counter.spawned += 1;
    return new Worker(new URL("../dist/yara-worker.js", import.meta.url), {
      workerData: { module: rules.module },
    });
  };
}

describe("the YARA worker pool replaces a worker before YARA-X's WebAssembly instance wears out", () => {
  const scanEicar = (pool: YaraWorkerPool) =>
    pool.scan(artifactFromBytes(eicarBytes()), {}, 1024, new AbortController().signal);

  it("replaces a worker after recycleAfterScans scans, with no scan failing or waiting for the swap", async () => {
    const counter = { spawned: 0 };
    const { pool, first } = await poolOf({
      maxQueuedScans: 8,
      recycleAfterScans: 3,
      spawnWorker: countedSpawn(counter),
    });
    const scans = async (count: number) => {
      for (let scan = 0; scan < count; scan += 1)
        expect((await scanEicar(pool)).map((match) => match.identifier)).toEqual(["eicar"]);
    };
    await scans(5); // a successor is started after the third; the first worker goes on meanwhile
    // The first worker went once its successor ran (a stopped worker's threadId is -1).
    await vi.waitFor(() => expect(first.threadId).toBe(-1));
    expect(counter.spawned).toBe(1);
    await scans(3); // the successor's third scan: it is replaced in turn
    await vi.waitFor(() => expect(counter.spawned).toBe(2));
    await vi.waitFor(() => expect(pool.status()).toMatchObject({ workers: 1, busy: 0 }));
    await scans(2);
  });

  it("replaces a worker that says its instance wears out, once its successor runs", async () => {
    // A worker whose every answer says so (the real one does past a size of its externref table).
    const wearing = answeringWorker('{ type: "result", id: request.id, matches: [], worn: true }');
    const counter = { spawned: 0 };
    const pool = await poolAround(wearing, {
      maxQueuedScans: 8,
      spawnWorker: countedSpawn(counter),
    });
    expect(await scanEicar(pool)).toEqual([]); // answered by the wearing worker
    await vi.waitFor(() => expect(wearing.threadId).toBe(-1)); // gone once its successor ran
    expect(counter.spawned).toBe(1);
    expect((await scanEicar(pool)).map((match) => match.identifier)).toEqual(["eicar"]);
  });

  it("heals when a worn worker dies while its successor is starting and the successor fails", async () => {
    const wearing = answeringWorker('{ type: "result", id: request.id, matches: [], worn: true }');
    let spawned = 0;
    const pool = await poolAround(wearing, {
      maxQueuedScans: 8,
      retryDelayMs: 20,
      spawnWorker: (rules: PoolRules) => {
        spawned += 1;
        // The successor dies before it compiles, after the worn worker is gone.
        if (spawned === 1)
          return new Worker("setTimeout(() => process.exit(3), 300)", { eval: true });
        return new Worker(new URL("../dist/yara-worker.js", import.meta.url), {
          workerData: { module: rules.module },
        });
      },
    });
    expect(await scanEicar(pool)).toEqual([]); // worn: a successor starts
    await wearing.terminate(); // the worn worker dies meanwhile (a crash, a deadline)
    // Before, the pool counted the failing successor as the one to come, and stayed empty.
    await vi.waitFor(() => expect(pool.status().workers).toBe(1), { timeout: 3000 });
    expect(spawned).toBe(2);
    expect((await scanEicar(pool)).map((match) => match.identifier)).toEqual(["eicar"]);
  });

  it("replaces a worker whose WebAssembly instance trapped, failing only the scan that met the trap", async () => {
    // A worker that compiles nothing and whose every scan meets a trap, as YARA-X's instance
    // did after ~13,000 scans: `unreachable`, then `memory access out of bounds` forever.
    const trapping = answeringWorker(
      '{ type: "scan-failed", id: request.id, message: "unreachable", unreadable: false, broken: true }',
    );
    const counter = { spawned: 0 };
    const pool = await poolAround(trapping, {
      maxQueuedScans: 8,
      spawnWorker: countedSpawn(counter),
    });
    await expect(scanEicar(pool)).rejects.toThrow(/the scan failed: unreachable/);
    // The next scan runs on a fresh worker (before, on the trapped one: failed again).
    expect((await scanEicar(pool)).map((match) => match.identifier)).toEqual(["eicar"]);
    expect(counter.spawned).toBe(1);
  });
});

describe("the YARA worker pool starts whole or not at all", () => {
  it("terminates the workers it started when one of them cannot start", async () => {
    const module = await compiledModule();
    const { worker } = await compileInWorker(module, sources, {});
    const spawned: Worker[] = [];
    let calls = 0;
    const start = YaraWorkerPool.start({ module, sources, externals: {} }, worker, 3, {
      maxQueuedScans: 8,
      spawnWorker: (rules: PoolRules) => {
        calls += 1;
        const next =
          calls === 2
            ? dyingWorker()
            : new Worker(new URL("../dist/yara-worker.js", import.meta.url), {
                workerData: { module: rules.module },
              });
        spawned.push(next);
        return next;
      },
    });
    const exited = (thread: Worker) =>
      new Promise<string>((resolve) => {
        thread.once("exit", () => resolve("exited"));
        setTimeout(() => resolve("still running"), 2000);
      });
    const given = exited(worker);
    const others = spawned.map(exited);
    await expect(start).rejects.toThrow(/exited with code 3/);
    // Every worker, the given one included, is gone: no orphan pool lives on.
    expect(await given).toBe("exited");
    expect(await Promise.all(others)).toEqual(spawned.map(() => "exited"));
    expect(calls).toBe(2);
  });
});
