// Benchmark: 1,000 bounties through `serve` + 2 `microengine worker` processes on BullMQ (queue
// mode), and the same through one `serve` process, in one run. Reports bounties/s, p50/p99
// latency (webhook posted -> answer received), lost (accepted, never answered; goal 0), late
// (goal 0) and duplicate answers posted. Every process uses one shared clamd (as a deployment
// with a clamd service would) and YARA (bundled rules); artifacts are 10 KB, over HTTP.
// Usage: pnpm --filter @engine/microengine bench:queue   (after pnpm build; needs clamd and
// redis-server installed). Environment: QUEUE_BENCH_BOUNTIES (1000), QUEUE_BENCH_SENDERS (50).
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { Agent } from "node:http";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startManagedClamd } from "@engine/clamav/managed";
import { percentile, postSignedBounty, startMarketplace } from "./bench-support.mjs";

const bounties = Number(process.env.QUEUE_BENCH_BOUNTIES ?? 1000);
const senders = Number(process.env.QUEUE_BENCH_SENDERS ?? 50);
const expirationMs = 30_000;
const secret = "queue-bench";
const cli = join(import.meta.dirname, "../bin/microengine.cjs");
const say = (message) => process.stderr.write(`[queue-bench] ${message}\n`);

const freePort = () =>
  new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

// Distinct artifacts and the marketplace's answer endpoint, on loopback.
const artifacts = Array.from({ length: 256 }, () => {
  const bytes = randomBytes(10 * 1024);
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
});
const marketplace = await startMarketplace({ artifacts });
const { answers, base } = marketplace;

const children = [];
function start(command, environment) {
  const child = spawn(process.execPath, [cli, command], {
    env: { ...process.env, LOG_LEVEL: "error", ...environment },
    stdio: ["ignore", "ignore", "inherit"],
  });
  children.push(child);
  return child;
}
async function ready(url) {
  for (let attempt = 0; attempt < 600; attempt += 1) {
    if (
      await fetch(url).then(
        (response) => response.ok,
        () => false,
      )
    )
      return;
    await sleep(100);
  }
  throw new Error(`${url} did not become ready`);
}
async function stopAll() {
  for (const child of children.splice(0)) {
    if (child.exitCode !== null) continue;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, sleep(20_000)]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
}

/** Posts the bounties from `senders` senders and waits for their answers (or their expiration). */
async function run(engineUrl, label, count = bounties) {
  const agent = new Agent({ keepAlive: true, maxSockets: senders });
  const sent = [];
  const firstId = randomInt(1_000_000, 1_000_000_000);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: senders }, async () => {
      for (let index = next++; index < count; index = next++) {
        const id = String(firstId + index);
        const item = artifacts[index % artifacts.length];
        const body = JSON.stringify({
          id,
          artifact_type: "file",
          artifact_uri: `${base}/a/${index % artifacts.length}`,
          expiration: new Date(Date.now() + expirationMs).toISOString(),
          response_url: `${base}/r/${id}`,
          sha256: item.sha256,
        });
        const bounty = {
          id,
          postedAt: performance.now(),
          expiresAt: performance.now() + expirationMs,
        };
        sent.push(bounty);
        bounty.status = await postSignedBounty({ agent, url: engineUrl, secret, body });
      }
    }),
  );
  // Until every bounty expired: a late duplicate (a deadline watcher's) must be counted too.
  const deadline = Math.max(...sent.map((bounty) => bounty.expiresAt)) + 1000;
  while (performance.now() < deadline) await sleep(250);
  agent.destroy();
  const accepted = sent.filter((bounty) => bounty.status === 202);
  const latencies = [];
  let lost = 0;
  let late = 0;
  let duplicates = 0;
  let unknown = 0;
  let lastAnswer = started;
  for (const bounty of accepted) {
    const list = answers.get(bounty.id) ?? [];
    if (list.length === 0) {
      lost += 1;
      continue;
    }
    duplicates += list.length - 1;
    if (JSON.parse(list[0].body).verdict !== "benign") unknown += 1;
    if (list[0].at > bounty.expiresAt) late += 1;
    latencies.push(list[0].at - bounty.postedAt);
    lastAnswer = Math.max(lastAnswer, list[0].at);
  }
  latencies.sort((a, b) => a - b);
  const row = {
    label,
    accepted: accepted.length,
    refused: sent.length - accepted.length,
    rate: latencies.length / ((lastAnswer - started) / 1000),
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    lost,
    late,
    duplicates,
    unknown,
  };
  say(JSON.stringify(row));
  return row;
}

const directory = await mkdtemp(join(tmpdir(), "engine-queue-bench-"));
const clamd = await startManagedClamd({ tcp: false, config: { DisableCache: true } });
const redisPort = await freePort();
const redis = spawn(
  "redis-server",
  [
    "--port",
    String(redisPort),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    directory,
  ],
  { stdio: "ignore" },
);
const shared = {
  WEBHOOK_SECRET: secret,
  CLAMD_SOCKET: clamd.socketPath,
  ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
  ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
};
const rows = [];
try {
  // One process.
  const alonePort = await freePort();
  start("serve", { ...shared, PORT: String(alonePort) });
  await ready(`http://127.0.0.1:${alonePort}/readyz`);
  await run(`http://127.0.0.1:${alonePort}/`, "warm-up", 50);
  answers.clear();
  rows.push(await run(`http://127.0.0.1:${alonePort}/`, "serve alone"));
  await stopAll();
  answers.clear();

  // serve + 2 workers on BullMQ.
  const queued = { ...shared, QUEUE_URL: `redis://127.0.0.1:${redisPort}`, QUEUE_NAME: "bench" };
  const servePort = await freePort();
  start("serve", { ...queued, PORT: String(servePort) });
  const workerPorts = [await freePort(), await freePort()];
  for (const port of workerPorts)
    start("worker", { ...queued, WORKER_PORT: String(port), WORKER_CONCURRENCY: "8" });
  await ready(`http://127.0.0.1:${servePort}/readyz`);
  for (const port of workerPorts) await ready(`http://127.0.0.1:${port}/readyz`);
  await run(`http://127.0.0.1:${servePort}/`, "warm-up", 50);
  answers.clear();
  rows.push(await run(`http://127.0.0.1:${servePort}/`, "serve + 2 workers (BullMQ)"));
} finally {
  await stopAll();
  redis.kill("SIGTERM");
  await clamd[Symbol.asyncDispose]();
  marketplace.close();
  await rm(directory, { recursive: true, force: true });
}
console.log(
  `\n${bounties} bounties of 10 KB from ${senders} senders, expiration ${expirationMs / 1000} s, YARA + one shared clamd, ${process.version}, 2 cores\n`,
);
console.log(
  "| mode | accepted | bounties/s | p50 | p99 | lost | late | duplicates | not benign (unknown) |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
for (const row of rows)
  console.log(
    `| ${row.label} | ${row.accepted} | ${row.rate.toFixed(1)} | ${row.p50?.toFixed(0)} ms | ${row.p99?.toFixed(0)} ms | ${row.lost} | ${row.late} | ${row.duplicates} | ${row.unknown} |`,
  );
