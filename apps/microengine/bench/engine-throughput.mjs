// Benchmark: the engine end to end (bounty posted -> artifact downloaded -> scanned -> assertion
// received), driven on loopback, against the raw multi scanner on the same artifacts, in one run.
// Reports bounties/s, p50/p99 bounty-to-assertion latency at concurrency 1, 10 and 50, for
// 10 KB and 1 MB artifacts, and the engine's peak RSS. Goal: engine >= 0.9x the raw scanner.
// Usage: pnpm --filter @engine/microengine bench   (after pnpm build; needs clamd installed)
// Environment: BENCH_BOUNTIES (200 per run for 10 KB; a quarter of it for 1 MB).
import { spawn } from "node:child_process";
import { createHash, createHmac, randomBytes, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClamavScanner } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { artifactFromFile } from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import { createYaraScanner } from "@engine/yara";
import { request } from "undici";

const secret = "bench-secret";
const bountiesPerRun = Number(process.env.BENCH_BOUNTIES ?? 200);
const work = await mkdtemp(join(tmpdir(), "engine-bench-"));
const sign = (body) => createHmac("sha256", secret).update(body).digest("hex");

// Artifacts: a pool of distinct random files per size, served over loopback.
const sizes = [
  ["10 KB", 10 * 1024, bountiesPerRun],
  ["1 MB", 1024 * 1024, Math.max(20, Math.round(bountiesPerRun / 4))],
];
const pools = new Map();
for (const [label, size] of sizes) {
  const pool = [];
  for (let index = 0; index < 64; index += 1) {
    const bytes = randomBytes(size);
    const path = join(work, `${size}-${index}.bin`);
    await writeFile(path, bytes);
    pool.push({ bytes, path, sha256: createHash("sha256").update(bytes).digest("hex") });
  }
  pools.set(label, pool);
}

const waiting = new Map();
const server = createServer((incoming, outgoing) => {
  const url = new URL(incoming.url ?? "/", "http://x");
  const artifact = /^\/a\/([^/]+)\/(\d+)$/.exec(url.pathname);
  if (artifact) {
    const item = pools.get(decodeURIComponent(artifact[1]))[Number(artifact[2])];
    outgoing.writeHead(200, { "content-length": item.bytes.length });
    return void outgoing.end(item.bytes);
  }
  const answer = /^\/r\/(\d+)$/.exec(url.pathname);
  if (answer) {
    const chunks = [];
    incoming.on("data", (chunk) => chunks.push(chunk));
    incoming.on("end", () => {
      outgoing.writeHead(200).end("{}");
      waiting.get(answer[1])?.(Buffer.concat(chunks).toString());
    });
    return;
  }
  outgoing.writeHead(404).end();
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;

// The engine, as operators run it, in its own process (so its RSS is its own).
const port = 20000 + randomInt(10000);
const engine = spawn(
  process.execPath,
  [join(import.meta.dirname, "../bin/microengine.cjs"), "serve"],
  {
    env: {
      ...process.env,
      WEBHOOK_SECRET: secret,
      PORT: String(port),
      ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
      ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "ignore", "inherit"],
  },
);
const engineUrl = `http://127.0.0.1:${port}/`;
for (let attempt = 0; ; attempt += 1) {
  try {
    await (await request(`http://127.0.0.1:${port}/healthz`)).body.text();
    break;
  } catch {
    if (attempt > 300) throw new Error("the engine did not start");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
const peakRss = () =>
  Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${engine.pid}/status`, "utf8"))?.[1] ?? 0) /
  1024;

async function engineRun(label, concurrency, count) {
  const pool = pools.get(label);
  const latencies = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let index = next++; index < count; index = next++) {
        const item = pool[index % pool.length];
        const id = String(randomInt(1, 2 ** 47));
        const body = `{"id":${id},"artifact_type":"file","artifact_uri":"${base}/a/${encodeURIComponent(label)}/${index % pool.length}","expiration":"${new Date(Date.now() + 60_000).toISOString()}","response_url":"${base}/r/${id}","sha256":"${item.sha256}","phase":"assertion","rules":{"min_allowed_bid":62500000000000000,"max_allowed_bid":1000000000000000000}}`;
        const answered = new Promise((resolve) => waiting.set(id, resolve));
        const sent = performance.now();
        const response = await request(engineUrl, {
          method: "POST",
          body,
          headers: {
            "content-type": "application/json",
            "x-polyswarm-event": "bounty",
            "x-polyswarm-signature": sign(body),
          },
        });
        await response.body.dump();
        if (response.statusCode !== 202) throw new Error(`engine answered ${response.statusCode}`);
        const answer = JSON.parse(await answered);
        waiting.delete(id);
        if (answer.verdict !== "benign")
          throw new Error(`unexpected answer ${JSON.stringify(answer).slice(0, 300)}`);
        latencies.push(performance.now() - sent);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((left, right) => left - right);
  const percentile = (share) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * share))];
  return { rate: count / seconds, p50: percentile(0.5), p99: percentile(0.99) };
}

// The raw multi scanner (same backends as the engine's embedded default), same artifacts.
const clamd = await startManagedClamd({ tcp: false });
const raw = createMultiScanner([
  createYaraScanner({ onDiagnostics: () => {} }),
  createClamavScanner(clamd.clientOptions()),
]);
await raw.setup();
async function rawRun(label, concurrency, count) {
  const pool = pools.get(label);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let index = next++; index < count; index = next++) {
        const result = await raw.scan(artifactFromFile(pool[index % pool.length].path));
        if (result.verdict !== "benign") throw new Error(`unexpected ${result.verdict}`);
      }
    }),
  );
  return { rate: count / ((performance.now() - started) / 1000) };
}

const rows = [];
try {
  for (const [label, , count] of sizes) {
    for (const concurrency of [1, 10, 50]) {
      await engineRun(label, concurrency, Math.min(count, 20)); // warm-up
      await rawRun(label, concurrency, Math.min(count, 20));
      const ours = await engineRun(label, concurrency, count);
      const direct = await rawRun(label, concurrency, count);
      rows.push({ label, concurrency, count, ours, direct });
    }
  }
  console.log(
    `\nengine: yara (bundled rules) + clamav (managed clamd), ${process.version}, 2 cores; bounties over loopback, artifacts downloaded over HTTP\n`,
  );
  console.log(
    "| artifact | concurrency | bounties | engine bounties/s | p50 | p99 | raw multi scans/s | engine / raw |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const row of rows) {
    console.log(
      `| ${row.label} | ${row.concurrency} | ${row.count} | ${row.ours.rate.toFixed(1)} | ${row.ours.p50.toFixed(1)} ms | ${row.ours.p99.toFixed(1)} ms | ${row.direct.rate.toFixed(1)} | ${(row.ours.rate / row.direct.rate).toFixed(2)}x |`,
    );
  }
  console.log(`\nengine peak RSS: ${peakRss().toFixed(0)} MB`);
} finally {
  engine.kill("SIGTERM");
  await raw.close();
  await clamd[Symbol.asyncDispose]();
  server.close();
  await rm(work, { recursive: true, force: true });
}
