// The upload benchmark: the same Express app shape (bench/upload-servers.mjs) with our guard,
// with multer + the npm clamscan package's scanStream, and with multer + pompelmi 0.26's
// scanBytes, side by side in one run against one managed clamd (cache off). Uploads of 1 MB
// and 100 MB, 8 at a time, as uploads per second and ratios; then one 1 GB upload each, the
// server's peak RSS, and the CPU each process spent per upload (on 2 cores the server, clamd and
// this client share them). Run `pnpm build` first:  pnpm --filter @engine/upload bench
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startManagedClamd } from "@engine/clamav/managed";

const MB = 1_000_000;
const variants = ["engine", "clamscan", "pompelmi"];
const rounds = [
  { label: "1 MB", bytes: MB, count: Number(process.env.BENCH_SMALL_COUNT ?? 96) },
  { label: "100 MB", bytes: 100 * MB, count: Number(process.env.BENCH_LARGE_COUNT ?? 8) },
];
const concurrency = 8;
const boundary = "----engine-bench";

/** A multipart body of one file of `bytes` (random, unique per upload), streamed in 1 MiB chunks. */
function body(bytes, seed) {
  const chunk = randomBytes(1024 * 1024);
  const head = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="f${seed}.bin"\r\ncontent-type: application/octet-stream\r\n\r\n${seed}-`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  let left = bytes;
  return new ReadableStream({
    start(controller) {
      controller.enqueue(head);
    },
    pull(controller) {
      if (left <= 0) {
        controller.enqueue(tail);
        controller.close();
        return;
      }
      const piece = chunk.subarray(0, Math.min(chunk.length, left));
      left -= piece.length;
      controller.enqueue(piece);
    },
  });
}

async function post(url, bytes, seed) {
  const response = await fetch(`${url}/upload`, {
    method: "POST",
    headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
    body: body(bytes, seed),
    duplex: "half",
  });
  await response.arrayBuffer();
  return response.status;
}

function startServer(variant, socket, directory) {
  const child = spawn(
    process.execPath,
    [join(import.meta.dirname, "upload-servers.mjs"), variant, socket, directory],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`${variant} server exited (${code})`)));
    child.stdout.once("data", (data) => resolve({ child, url: data.toString().trim() }));
  });
}

async function stopServer({ child }) {
  child.removeAllListeners("exit");
  child.kill("SIGKILL");
}

/** CPU time a process (all its threads) has used so far, in ms (Linux /proc, 100 ticks/s). */
async function cpuMs(pid) {
  const fields = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Peak resident memory of a process (VmHWM), in MB. */
async function peakRss(pid) {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function throughput(url, { bytes, count }) {
  let next = 0;
  const statuses = [];
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let seed = next++; seed < count; seed = next++)
        statuses.push(await post(url, bytes, seed));
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  return { perSecond: count / seconds, ok: statuses.filter((status) => status === 200).length };
}

const work = await mkdtemp(join(tmpdir(), "engine-upload-bench-"));
const clamd = await startManagedClamd({
  config: {
    DisableCache: true,
    StreamMaxLength: "2000M",
    MaxFileSize: "2000M",
    MaxScanSize: "2000M",
  },
});
const socket = clamd.clientOptions("socket").socket;
try {
  console.log(
    `upload benchmark: ${concurrency} at a time, node ${process.version}, managed clamd (cache off)`,
  );
  const results = {};
  for (const round of rounds) {
    results[round.label] = {};
    for (const variant of variants) {
      const directory = await mkdtemp(join(work, `${variant}-`));
      const server = await startServer(variant, socket, directory);
      try {
        await post(server.url, MB, -1); // warm-up
        // Where the CPU goes, per upload: the server, clamd and this client share the cores.
        const before = [await cpuMs(server.child.pid), await cpuMs(clamd.pid), process.cpuUsage()];
        results[round.label][variant] = await throughput(server.url, round);
        const client = process.cpuUsage(before[2]);
        results[round.label][variant].cpu = [
          (await cpuMs(server.child.pid)) - before[0],
          (await cpuMs(clamd.pid)) - before[1],
          (client.user + client.system) / 1000,
        ].map((ms) => ms / round.count);
      } finally {
        await stopServer(server);
        await rm(directory, { recursive: true, force: true });
      }
    }
    const ours = results[round.label].engine.perSecond;
    console.log(`\n${round.label} x ${round.count}`);
    for (const variant of variants) {
      const { perSecond, ok, cpu } = results[round.label][variant];
      const [server, scanner, client] = cpu.map((ms) => ms.toFixed(1).padStart(6));
      console.log(
        `  ${variant.padEnd(9)} ${perSecond.toFixed(2).padStart(7)} uploads/s  (${ok}/${round.count} kept)  ours/this ${(ours / perSecond).toFixed(2)}x   CPU ms per upload: server ${server}, clamd ${scanner}, client ${client}`,
      );
    }
  }
  console.log("\none 1 GB upload: the server's peak RSS");
  for (const variant of variants) {
    const directory = await mkdtemp(join(work, `${variant}-`));
    const server = await startServer(variant, socket, directory);
    try {
      const before = await peakRss(server.child.pid);
      const started = performance.now();
      const status = await post(server.url, 1000 * MB, 1);
      const seconds = (performance.now() - started) / 1000;
      const peak = await peakRss(server.child.pid);
      console.log(
        `  ${variant.padEnd(9)} peak RSS ${peak.toFixed(0).padStart(5)} MB (at start ${before.toFixed(0)} MB), status ${status}, ${seconds.toFixed(1)} s`,
      );
    } finally {
      await stopServer(server);
      await rm(directory, { recursive: true, force: true });
    }
  }
} finally {
  await clamd[Symbol.asyncDispose]();
  await rm(work, { recursive: true, force: true });
}
