// Benchmark: our clamd client against clamdscan, side by side in one run, on the same managed
// clamd (cache off, so clamd really scans every time).
//   (a) one 200 MB file, (b) 1,000 files of 10 KB; at concurrency 1 and 4.
// Rows: clamdscan --stream, --fdpass, and --multiscan --fdpass (one process on the directory);
// the npm `clamscan` package (what most Node users pick) on files (`isInfected`) and on bytes in
// memory (`scanStream`); ours by INSTREAM (reading the file), SCAN <path>, FILDES, and bytes
// already in memory (an upload or a download, as the engine scans them) by INSTREAM and by
// default (a sealed memory file by FILDES up to memoryFileMaxBytes, 1 MiB; streamed above).
// Prints a markdown table with MB/s or files/s and the ratio to `clamdscan --stream`.
// Usage: pnpm --filter @engine/clamav bench   (after pnpm build)
// Environment: BENCH_WORKLOADS=a|b|ab (default ab), BENCH_BIG_MB (200), BENCH_SMALL_FILES (1000),
// BENCH_ROUNDS (3; the median round is reported).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { ClamdClient } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { artifactFromBytes, artifactFromFile } from "@engine/core";

const run = promisify(execFile);
const bigBytes = Number(process.env.BENCH_BIG_MB ?? 200) * 1024 * 1024;
const smallCount = Number(process.env.BENCH_SMALL_FILES ?? 1000);
const smallBytes = 10 * 1024;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const work = await mkdtemp(join(tmpdir(), "engine-clamav-bench-"));
const clamd = await startManagedClamd({
  tcp: false,
  config: {
    DisableCache: true,
    StreamMaxLength: "1000M",
    MaxFileSize: "1000M",
    MaxScanSize: "1000M",
    MaxThreads: 8,
  },
});
const configFile = join(clamd.directory, "clamd.conf");

try {
  const bigPath = join(work, "big.bin");
  await writeFile(bigPath, randomBytes(bigBytes));
  const smallDirectory = join(work, "small");
  await mkdir(smallDirectory);
  const smallPaths = [];
  for (let index = 0; index < smallCount; index += 1) {
    const path = join(smallDirectory, `file-${index}.bin`);
    await writeFile(path, randomBytes(smallBytes));
    smallPaths.push(path);
  }

  /** Runs `task(item)` over items with `concurrency` workers; returns seconds. */
  async function timed(items, concurrency, task) {
    const queue = [...items];
    const started = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let item = queue.shift(); item !== undefined; item = queue.shift()) await task(item);
      }),
    );
    return Number(process.hrtime.bigint() - started) / 1e9;
  }

  // The small files' bytes, for the in-memory rows (an upload or a download held in memory).
  const inMemory = new Map();
  for (const path of [...smallPaths, bigPath]) inMemory.set(path, await readFile(path));

  /**
   * Our client on `paths` in `mode`; with `fromMemory`, each file's bytes already in memory
   * (`artifactFromBytes`): by default a memory file by FILDES up to 1 MiB (`mode` "fildes"; larger
   * ones are streamed), or streamed (`mode` "instream", `memoryFileMaxBytes: 0`).
   */
  async function ours(mode, paths, concurrency, { fromMemory = false } = {}) {
    const client = new ClamdClient({
      socket: clamd.socketPath,
      maxConnections: concurrency,
      scanLocalFiles: mode !== "instream",
      passFileDescriptors: mode === "fildes",
      maxStreamBytes: 1000 * 1024 * 1024,
      ...(fromMemory && mode === "instream" ? { memoryFileMaxBytes: 0 } : {}),
    });
    await client.ping();
    const seconds = await timed(paths, concurrency, async (path) => {
      const artifact = fromMemory ? artifactFromBytes(inMemory.get(path)) : artifactFromFile(path);
      const outcome = await client.scan(artifact);
      const expected =
        fromMemory &&
        mode === "fildes" &&
        inMemory.get(path).byteLength > client.options.memoryFileMaxBytes
          ? "instream"
          : mode;
      if (outcome.reply.kind !== "ok" || outcome.mode !== expected)
        throw new Error(`unexpected ${JSON.stringify(outcome)}`);
    });
    await client.close();
    return seconds;
  }

  async function clamdscan(flag, paths, concurrency) {
    // One clamdscan process per worker, each given its share of the files (as a user would run it).
    const shares = Array.from({ length: concurrency }, (_, worker) =>
      paths.filter((_, index) => index % concurrency === worker),
    );
    const started = process.hrtime.bigint();
    await Promise.all(
      shares
        .filter((share) => share.length > 0)
        .map(async (share) => {
          const { stdout } = await run(
            "clamdscan",
            [`--config-file=${configFile}`, flag, "--no-summary", "--infected", ...share],
            {
              maxBuffer: 64 * 1024 * 1024,
            },
          ).catch((error) => {
            throw new Error(`clamdscan failed: ${error.stderr || error.message}`);
          });
          if (stdout.trim().length > 0) throw new Error(`clamdscan reported: ${stdout}`);
        }),
    );
    return Number(process.hrtime.bigint() - started) / 1e9;
  }

  /**
   * `clamdscan --multiscan --fdpass` as a user runs it on a directory: one process, one
   * MULTISCAN, clamd scanning the files on its own threads (the concurrency does not apply).
   */
  async function clamdscanMultiscan(paths) {
    const whole = paths.length === smallPaths.length && paths[0] === smallPaths[0];
    const started = process.hrtime.bigint();
    const { stdout } = await run(
      "clamdscan",
      [
        `--config-file=${configFile}`,
        "--multiscan",
        "--fdpass",
        "--no-summary",
        "--infected",
        ...(whole ? [smallDirectory] : paths),
      ],
      { maxBuffer: 64 * 1024 * 1024 },
    ).catch((error) => {
      throw new Error(`clamdscan failed: ${error.stderr || error.message}`);
    });
    if (stdout.trim().length > 0) throw new Error(`clamdscan reported: ${stdout}`);
    return Number(process.hrtime.bigint() - started) / 1e9;
  }

  // The npm clamscan package, as its README configures it for a clamd socket (no local fallback).
  const { default: NodeClam } = await import("clamscan");
  const clamscan = await new NodeClam().init({
    clamdscan: { socket: clamd.socketPath, timeout: 600_000, localFallback: false },
    preference: "clamdscan",
  });
  /** The npm clamscan package on `paths`: files (`isInfected`), or bytes in memory (`scanStream`). */
  async function npmClamscan(paths, concurrency, { fromMemory = false } = {}) {
    return timed(paths, concurrency, async (path) => {
      const { isInfected } = fromMemory
        ? await clamscan.scanStream(Readable.from([inMemory.get(path)]))
        : await clamscan.isInfected(path);
      if (isInfected !== false) throw new Error(`clamscan: isInfected ${isInfected} for ${path}`);
    });
  }

  const methods = [
    ["clamdscan --stream", (paths, concurrency) => clamdscan("--stream", paths, concurrency)],
    ["clamdscan --fdpass", (paths, concurrency) => clamdscan("--fdpass", paths, concurrency)],
    ["clamdscan --multiscan --fdpass (one process)", (paths) => clamdscanMultiscan(paths)],
    [
      "npm clamscan 2.4 isInfected (files)",
      (paths, concurrency) => npmClamscan(paths, concurrency),
    ],
    [
      "npm clamscan 2.4 scanStream (bytes in memory)",
      (paths, concurrency) => npmClamscan(paths, concurrency, { fromMemory: true }),
    ],
    ["@engine/clamav INSTREAM", (paths, concurrency) => ours("instream", paths, concurrency)],
    ["@engine/clamav SCAN path", (paths, concurrency) => ours("path", paths, concurrency)],
    ["@engine/clamav FILDES", (paths, concurrency) => ours("fildes", paths, concurrency)],
    [
      "@engine/clamav bytes in memory, INSTREAM",
      (paths, concurrency) => ours("instream", paths, concurrency, { fromMemory: true }),
    ],
    [
      "@engine/clamav bytes in memory (default: a memory file by FILDES up to 1 MiB)",
      (paths, concurrency) => ours("fildes", paths, concurrency, { fromMemory: true }),
    ],
  ];
  const rows = [];
  const workloads = [
    [`(a) one ${bigBytes / 2 ** 20} MB file`, "MB/s", [bigPath], bigBytes / 2 ** 20],
    [`(b) ${smallCount} files of 10 KB`, "files/s", smallPaths, smallCount],
  ].filter((_, index) => (process.env.BENCH_WORKLOADS ?? "ab").includes("ab"[index]));
  for (const [workload, unit, paths, amount] of workloads) {
    for (const concurrency of [1, 4]) {
      // (a) at concurrency 4: four scans of the 200 MB file at once.
      const items = paths.length === 1 ? Array(concurrency).fill(paths[0]) : paths;
      const total = paths.length === 1 ? amount * concurrency : amount;
      // Rounds interleave the clients (rotating who goes first) and keep each one's median,
      // so that noise from other work on the machine hits all of them alike.
      const seconds = new Map(methods.map(([name]) => [name, []]));
      for (const [, method] of methods)
        await method(items.slice(0, Math.min(items.length, 50)), concurrency); // warm-up
      for (let round = 0; round < rounds; round += 1) {
        for (let index = 0; index < methods.length; index += 1) {
          const [name, method] = methods[(index + round) % methods.length];
          seconds.get(name).push(await method(items, concurrency));
        }
      }
      const median = (values) =>
        [...values].sort((left, right) => left - right)[Math.floor(values.length / 2)];
      const baseline = total / median(seconds.get(methods[0][0]));
      for (const [name] of methods) {
        const taken = median(seconds.get(name));
        const rate = total / taken;
        rows.push({
          workload,
          concurrency,
          name,
          rate: `${rate.toFixed(1)} ${unit}`,
          seconds: taken.toFixed(2),
          ratio: (rate / baseline).toFixed(2),
        });
      }
    }
  }
  console.log(
    `\nclamd ${(await new ClamdClient({ socket: clamd.socketPath }).version()).engineVersion}, cache off, unix socket, ${process.version}\n`,
  );
  console.log(`median of ${rounds} interleaved rounds\n`);
  console.log("| workload | concurrency | client | throughput | seconds | vs clamdscan --stream |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const row of rows)
    console.log(
      `| ${row.workload} | ${row.concurrency} | ${row.name} | ${row.rate} | ${row.seconds} | ${row.ratio}x |`,
    );
} finally {
  await clamd[Symbol.asyncDispose]();
  await rm(work, { recursive: true, force: true });
}
