import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { gzipSync } from "node:zlib";
import {
  type Artifact,
  createEicarScanner,
  eicarBytes,
  type Scanner,
  type ScanResult,
  type Verdict,
} from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { withUnpacking } from "../../../src/backends/unpacking-backend.js";
import { tarArchive } from "../../../src/commands/check-archives.js";
import {
  queuedScansPerConcurrency,
  scanInWalkOrder,
  scanWindowEntries,
} from "../../../src/commands/scan/scan-in-walk-order.js";
import { scanExitCode } from "../../../src/commands/scan/scan-summary.js";
import { walkPaths } from "../../../src/commands/scan/walk-thread.js";
import { loadConfig } from "../../../src/config/config.js";
import { sarifValidator } from "../../harness/sarif-schema.js";
import { fakeScanner, resultOf, scan, sink, tinyFiles } from "./scan-fakes.js";

// Audit finding 14: `microengine scan` kept every path and every full result (with each
// backend's metadata) until the end, about 3.2 KB a file (967 MB for 300,000 files). These
// tests pin down that a scan streams: what it holds does not grow with the files scanned.
const collect = (globalThis as { gc?: () => void }).gc;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "engine-scan-command-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("scanPaths holds a bounded number of results (audit finding 14)", () => {
  const fileCount = 3000;
  let tree: string;
  beforeAll(async () => {
    tree = join(root, "many");
    await tinyFiles(tree, fileCount);
  });

  it.each(["text", "json", "sarif"] as const)(
    "keeps nothing of a reported file: earlier results are collected and the heap does not grow per file (%s)",
    async (format) => {
      if (!collect) throw new Error("this test needs node --expose-gc (see vitest.shared.ts)");
      const gc = collect;
      const results: WeakRef<object>[] = [];
      const samples: Array<{ heap: number; alive: number }> = [];
      const sample = async () => {
        // In a later turn (WeakRefs dereferenced in this one stay alive until it ends).
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        gc();
        samples.push({
          heap: process.memoryUsage().heapUsed,
          alive: results.filter((result) => result.deref() !== undefined).length,
        });
      };
      const scanner = fakeScanner(async (_path, call) => {
        // A turn of the event loop per scan, as a real backend's read takes.
        await new Promise((resolve) => setImmediate(resolve));
        if (call === 1000 || call === fileCount) await sample();
        if (call % 97 === 0) throw new Error("the backend fell over");
        const verdict: Verdict =
          call % 50 === 0 ? "malicious" : call % 50 === 1 ? "unknown" : "benign";
        // A large per-result blob, as a backend's provenance can be: 2048 numbers (8-16 KB).
        const result = resultOf(verdict, { provenance: new Array(2048).fill(call) });
        results.push(new WeakRef(result));
        return result;
      });
      const out = sink({ keep: false });
      const { summary } = await scan(scanner, [tree], { format, concurrency: 4, out: out.stream });

      expect(summary.files + summary.errors).toBe(fileCount);
      expect(out.bytes()).toBeGreaterThan(0);
      const [early, late] = samples as [(typeof samples)[0], (typeof samples)[0]];
      // Alive at the last scan: at most the in-flight window, not the ~3000 before.
      expect(late.alive).toBeLessThanOrEqual(scanWindowEntries);
      // 2000 files between the samples: a kept result would cost 8 KB or more each.
      const perFile = (late.heap - early.heap) / (fileCount - 1000);
      expect(perFile).toBeLessThan(1024);
    },
  );

  it("scans while it walks: a file created during the scan, in a directory not walked yet, is scanned", async () => {
    const growing = join(root, "growing");
    await tinyFiles(join(growing, "a"), 200);
    await mkdir(join(growing, "z"));
    const scanner = fakeScanner(async (_path, call) => {
      if (call === 1) await writeFile(join(growing, "z", "late.txt"), "late\n");
      return resultOf("benign");
    });
    const { summary, stdout } = await scan(scanner, [growing], { format: "json" });
    expect(summary.files).toBe(201);
    expect(stdout).toContain(join(growing, "z", "late.txt"));
  });
});

describe("scanPaths streams in walk order", () => {
  let tree: string;
  let walkOrder: string[];
  beforeAll(async () => {
    tree = join(root, "ordered");
    await tinyFiles(tree, 1200);
    await symlink("missing", join(tree, "d001", "dangling"));
    walkOrder = [];
    for await (const entry of walkPaths([tree])) walkOrder.push(entry.path);
  });

  /** Finishes scans out of order: a delay from 0 to 3 ms derived from the path. */
  const shuffling = () =>
    fakeScanner(async (path) => {
      const delay = [...path].reduce((sum, character) => sum + character.charCodeAt(0), 0) % 4;
      await new Promise((resolve) => setTimeout(resolve, delay));
      return resultOf(path.endsWith("7") ? "malicious" : "benign");
    });

  it("writes each entry in walk order whatever order the scans finish in, the same run to run", async () => {
    const first = await scan(shuffling(), [tree], { format: "json", concurrency: 8 });
    const paths = first.stdout
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { path: string }).path);
    expect(paths).toEqual(walkOrder);
    const text = await scan(shuffling(), [tree], { concurrency: 8 });
    expect((await scan(shuffling(), [tree], { concurrency: 8 })).stdout).toBe(text.stdout);
    expect(text.stdout.split("\n").filter((line) => line.startsWith("MALICIOUS"))).toEqual(
      walkOrder
        .filter((path) => path.endsWith("7"))
        .map((path) => `MALICIOUS ${path}: Test.Family (fake)`),
    );
  });

  it("runs at most --concurrency scans at once", async () => {
    let running = 0;
    let mostRunning = 0;
    const scanner = fakeScanner(async () => {
      running += 1;
      mostRunning = Math.max(mostRunning, running);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 2));
      running -= 1;
      return resultOf("benign");
    });
    const { summary } = await scan(scanner, [tree], { format: "json", concurrency: 3 });
    expect(summary.files).toBe(1200);
    expect(mostRunning).toBe(3);
  });

  it("keeps the other scans busy behind a slow file, up to the window and no further", async () => {
    // The first file's scan hangs until released; the others finish at once. Output waits in
    // walk order, but the walk and the scans go on behind it until the window's worth of
    // entries is found (1024), then the walk waits.
    let started = 0;
    let written = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const out = new Writable({
      write(chunk: Buffer, _encoding, done) {
        written += chunk.toString().split("\n").length - 1;
        done();
      },
    });
    const scanner = fakeScanner(async (_path, call) => {
      started += 1;
      if (call === 1) await held;
      else await new Promise((resolve) => setImmediate(resolve));
      return resultOf("benign");
    });
    const scanning = scan(scanner, [tree], { format: "json", concurrency: 3, out });
    try {
      // The tree has 1201 entries (1200 files and a dangling link, 501st): more than the
      // window, which holds the link and 1023 files.
      await vi.waitFor(() => expect(started).toBe(scanWindowEntries - 1), { timeout: 15_000 });
      // Given time to overshoot, it does not: nothing written (the head holds it), none started.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect([started, written]).toEqual([scanWindowEntries - 1, 0]);
    } finally {
      release();
    }
    const { summary } = await scanning;
    expect(summary.files).toBe(1200);
    expect(written).toBe(1201);
  });

  it("walks no further while 4 x --concurrency scans wait for a turn", async () => {
    // Every scan hangs: 3 run, 12 wait, and the walk stops there (what it saw of a file is
    // never much older than its scan), however large the window.
    let found = 0;
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const scanner = fakeScanner(async () => {
      await held;
      return resultOf("benign");
    });
    const entries: string[] = [];
    const walking = (async () => {
      for await (const entry of scanInWalkOrder(scanner, [tree], {
        concurrency: 3,
        timeoutMs: 10_000,
        maxFileBytes: 2 ** 40,
        onFound: () => {
          found += 1;
        },
      }))
        entries.push(entry.path);
    })();
    try {
      await vi.waitFor(() => expect(found).toBe(3 + 3 * queuedScansPerConcurrency), {
        timeout: 15_000,
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect([found, entries.length]).toEqual([15, 0]);
    } finally {
      release();
    }
    await walking;
    expect(entries).toEqual(walkOrder);
  });

  it("stops the scans nobody will read when the reader stops early", async () => {
    // The head finishes after a moment; every other scan runs until its signal fires. A reader
    // that stops after the first entry (an output that failed: EPIPE, say) must get control
    // back, with the scans it will never read stopped, not run to their deadline.
    let started = 0;
    const scanner: Scanner = {
      name: "fake",
      scan: async (_artifact, options) => {
        started += 1;
        if (started === 1) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          return resultOf("benign");
        }
        await new Promise((_resolve, reject) => {
          const signal = options?.signal;
          if (signal?.aborted) reject(signal.reason);
          signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
        });
        return resultOf("benign");
      },
      [Symbol.asyncDispose]: async () => {},
    };
    const begun = Date.now();
    for await (const entry of scanInWalkOrder(scanner, [tree], {
      concurrency: 3,
      timeoutMs: 60_000,
      maxFileBytes: 2 ** 40,
    })) {
      expect(entry.path).toBe(walkOrder[0]);
      break;
    }
    // Back at once (not at the 60 s deadline), and no queued scan started after the reader left.
    expect(Date.now() - begun).toBeLessThan(5_000);
    const startedAtExit = started;
    expect(startedAtExit).toBeLessThanOrEqual(4);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(started).toBe(startedAtExit);
  });
});

describe("scanPaths output", () => {
  let tree: string;
  beforeAll(async () => {
    tree = join(root, "mixed");
    await mkdir(join(tree, "sub"), { recursive: true });
    for (const name of ["clean.txt", "evil.com", "odd.bin", "secret.zip", "sub/broken.bin"])
      await writeFile(join(tree, name), name);
    await symlink("missing-target", join(tree, "dangling"));
    execFileSync("mkfifo", [join(tree, "pipe")]);
  });

  const answers = () =>
    fakeScanner((path) => {
      if (path.endsWith("broken.bin")) throw new Error("read failed");
      if (path.endsWith("evil.com")) return resultOf("malicious");
      if (path.endsWith("odd.bin")) return resultOf("suspicious");
      if (path.endsWith("secret.zip")) return resultOf("unknown");
      return resultOf("benign");
    });

  it("text: every malicious, suspicious, unknown and error entry in walk order, then the counts", async () => {
    const { summary, stdout, stderr } = await scan(answers(), [tree]);
    expect(stdout).toBe(
      [
        `ERROR ${join(tree, "dangling")}: dangling symbolic link (its target does not exist)`,
        `MALICIOUS ${join(tree, "evil.com")}: Test.Family (fake)`,
        `SUSPICIOUS ${join(tree, "odd.bin")}: Test.Family (fake)`,
        `UNKNOWN ${join(tree, "secret.zip")}: fake: SKIPPED:ENCRYPTED`,
        `ERROR ${join(tree, "sub", "broken.bin")}: ENGINE_ERROR: Error: read failed`,
        "",
        "  verdict     files",
        "  malicious   1",
        "  suspicious  1",
        "  benign      1",
        "  unknown     1",
        "  errors      2",
        "  skipped     1",
        "  scanned     4",
        "",
      ].join("\n"),
    );
    expect(stderr).toContain(`SKIPPED ${join(tree, "pipe")}: a FIFO`);
    expect(scanExitCode(summary)).toBe(2);
  });

  it("sarif: one valid SARIF 2.1.0 log, results and notifications in walk order, no spool file left", async () => {
    const spools = async () =>
      (await readdir(tmpdir())).filter((name) => name.startsWith("microengine-sarif-"));
    const before = await spools();
    let duringTheScan: string[] = [];
    const scanner = answers();
    const watching = fakeScanner(async (path) => {
      if (path.endsWith("sub/broken.bin")) duringTheScan = await spools();
      return scanner.scan({ path } as Artifact);
    });
    const { stdout, stderr } = await scan(watching, [tree], { format: "sarif" });
    const log = JSON.parse(stdout);
    const validate = sarifValidator();
    expect(validate(log), JSON.stringify(validate.errors)).toBe(true);
    const run = log.runs[0];
    expect(run.tool.extensions).toEqual([
      {
        name: "fake",
        version: "fake-1.0",
        rules: [{ id: "Test.Family", shortDescription: { text: "Test.Family" } }],
      },
    ]);
    expect(
      run.results.map(
        (result: {
          level: string;
          locations: Array<{ physicalLocation: { artifactLocation: { uri: string } } }>;
        }) => `${result.level} ${result.locations[0]?.physicalLocation.artifactLocation.uri}`,
      ),
    ).toEqual([
      `error ${new URL(`file://${join(tree, "evil.com")}`).href}`,
      `warning ${new URL(`file://${join(tree, "odd.bin")}`).href}`,
    ]);
    expect(run.invocations[0].executionSuccessful).toBe(false);
    expect(
      run.invocations[0].toolExecutionNotifications.map(
        (notification: { level: string; message: { text: string } }) =>
          `${notification.level} ${notification.message.text}`,
      ),
    ).toEqual([
      "error dangling symbolic link (its target does not exist)",
      "error could not be looked into (fake: SKIPPED:ENCRYPTED)",
      "error ENGINE_ERROR: Error: read failed",
      "note a FIFO",
    ]);
    expect(stderr).toMatch(/ERROR .*dangling: dangling symbolic link/);
    // The notifications' spool is unlinked as soon as it is open: never visible, never left.
    expect(duringTheScan).toEqual(before);
    expect(await spools()).toEqual(before);
  });

  it("sarif: a clean scan is a successful run with no notifications", async () => {
    const { stdout } = await scan(answers(), [join(tree, "clean.txt")], { format: "sarif" });
    const log = JSON.parse(stdout);
    expect(sarifValidator()(log)).toBe(true);
    expect(log.runs[0].results).toEqual([]);
    expect(log.runs[0].invocations[0]).toEqual({
      executionSuccessful: true,
      toolExecutionNotifications: [],
    });
  });

  it("on a terminal, the progress line counts the entries found, the files scanned and the rate (no total)", async () => {
    const err = sink({ isTTY: true });
    const { stdout } = await scan(answers(), [tree], { err: err.stream });
    expect(err.text()).toMatch(/\d+ found, 5 files scanned, \d+\.\d files\/s/);
    expect(err.text()).not.toMatch(/\d+\/\d+/);
    expect(stdout).toContain(`MALICIOUS ${join(tree, "evil.com")}: Test.Family (fake)`);
  });
});

describe("scanPaths inside containers (UNPACK)", () => {
  let tree: string;
  let scanner: Scanner;
  beforeAll(async () => {
    tree = join(root, "archives");
    await mkdir(tree, { recursive: true });
    await writeFile(
      join(tree, "eicar.tar.gz"),
      gzipSync(tarArchive([{ name: "eicar.com", data: eicarBytes() }])),
    );
    // A gzip whose body does not inflate, inside a tar: that member is not looked into.
    const corrupt = Buffer.concat([
      Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]),
      Buffer.alloc(64, 0xff),
    ]);
    await writeFile(join(tree, "bad.tar"), tarArchive([{ name: "inner.gz", data: corrupt }]));
    const eicar = createEicarScanner();
    const backend = withUnpacking(
      {
        name: eicar.name,
        scanner: eicar,
        status: { name: eicar.name, running: true, reason: "test" },
        health: async () => ({ ok: true }),
      },
      loadConfig({}),
    );
    scanner = createMultiScanner([backend.scanner], { name: "microengine" });
  });

  it("text: a detection names the member it is in, an unknown the member skipped and why", async () => {
    const { stdout } = await scan(scanner, [tree]);
    const lines = stdout.split("\n");
    expect(lines).toContain(
      `MALICIOUS ${join(tree, "eicar.tar.gz")}: EICAR-Test-File (eicar in eicar.tar.gz!/eicar.tar)`,
    );
    expect(lines.find((line) => line.startsWith("UNKNOWN"))).toMatch(
      new RegExp(
        `^UNKNOWN ${join(tree, "bad.tar")}: eicar: SKIPPED:CORRUPT bad\\.tar!/inner\\.gz!/inner \\(the member could not be decoded: .+\\)$`,
      ),
    );
  });

  it("json: each line carries the backends' metadata.unpack", async () => {
    const { stdout } = await scan(scanner, [tree], { format: "json" });
    const lines = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as ScanResult & { path: string });
    const malicious = lines.find((line) => line.path.endsWith("eicar.tar.gz"));
    expect(malicious?.metadata.backends?.[0]?.metadata?.unpack).toMatchObject({
      members: 1,
      detected_in: "eicar.tar.gz!/eicar.tar",
    });
    const unknown = lines.find((line) => line.path.endsWith("bad.tar"));
    expect(unknown?.metadata.backends?.[0]?.metadata?.unpack).toMatchObject({
      skipped: [{ path: "bad.tar!/inner.gz!/inner", code: "SKIPPED:CORRUPT" }],
      skipped_count: 1,
    });
  });

  it("sarif: the member path in the result's message and properties, and in the unknown's notification", async () => {
    const { stdout } = await scan(scanner, [tree], { format: "sarif" });
    const log = JSON.parse(stdout);
    const validate = sarifValidator();
    expect(validate(log), JSON.stringify(validate.errors)).toBe(true);
    const [result] = log.runs[0].results;
    expect(result.message.text).toBe(
      "eicar found EICAR-Test-File (malicious) in eicar.tar.gz!/eicar.tar",
    );
    expect(result.properties).toMatchObject({ memberPath: "eicar.tar.gz!/eicar.tar" });
    const [notification] = log.runs[0].invocations[0].toolExecutionNotifications;
    expect(notification.message.text).toMatch(
      /^could not be looked into \(eicar: SKIPPED:CORRUPT bad\.tar!\/inner\.gz!\/inner \(/,
    );
  });
});
