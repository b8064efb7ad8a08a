// Benchmark: the engine end to end (bounty posted -> artifact downloaded -> scanned -> assertion
// received), driven on loopback, against the raw multi scanner on the same artifacts, in one run.
// Both use one clamd started here with its cache off (DisableCache), the same YARA engine
// (YARA_ENGINE=auto) and rules, and every bounty carries an artifact of its own (distinct
// bytes): nothing is answered from a cache. The engine's result cache is off (CACHE_TTL_SECONDS=0).
// The raw multi scans the bytes in memory, as the engine does after downloading them.
// Reports bounties/s and p50/p99 bounty-to-assertion latency at concurrency 1, 10 and 50, for
// 10 KB and 1 MB artifacts, the raw multi's scans/s, and the engine's peak RSS.
// Goals: engine >= 0.85x the raw multi at 10 KB and >= 0.9x at 1 MB, at concurrency 10.
// Usage: pnpm --filter @engine/microengine bench   (after pnpm build; needs clamd installed)
// Environment: BENCH_BOUNTIES (200 per run for 10 KB; a quarter of it for 1 MB),
// BENCH_CONCURRENCY (1,10,50).
import { execFileSync } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { Agent } from "node:http";
import { availableParallelism } from "node:os";
import { createClamavScanner } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { artifactFromBytes } from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import { createYaraScanner } from "@engine/yara";
import {
  memoryOf,
  percentile,
  postSignedBounty,
  startMarketplace,
  startServe,
} from "./bench-support.mjs";

const secret = "bench-secret";
const bountiesPerRun = Number(process.env.BENCH_BOUNTIES ?? 200);
const concurrencies = (process.env.BENCH_CONCURRENCY ?? "1,10,50").split(",").map(Number);
const sizes = [
  ["10 KB", 10 * 1024, bountiesPerRun],
  ["1 MB", 1024 * 1024, Math.max(20, Math.round(bountiesPerRun / 4))],
];

// One artifact per bounty of a run (the warm-up has its own), the same for the engine and the raw multi.
const artifacts = [];
const runs = new Map();
for (const [label, size, count] of sizes) {
  const take = (amount) =>
    Array.from({ length: amount }, () => {
      const bytes = randomBytes(size);
      artifacts.push({ bytes, sha256: createHash("sha256").update(bytes).digest("hex") });
      return artifacts.length - 1;
    });
  runs.set(label, { warmUp: take(Math.min(count, 20)), measured: take(count) });
}

const waiting = new Map();
const marketplace = await startMarketplace({
  artifacts,
  onAnswer: (id, answer) => waiting.get(id)?.(answer.body),
});
const clamd = await startManagedClamd({ tcp: false, config: { DisableCache: true } }).catch(
  (error) => {
    marketplace.close();
    throw error;
  },
);
const started = await startServe({
  secret,
  environment: {
    CLAMD_SOCKET: clamd.socketPath,
    YARA_ENGINE: "auto",
    CACHE_TTL_SECONDS: "0",
    LOG_LEVEL: "warn",
  },
}).catch(async (error) => {
  marketplace.close();
  await clamd[Symbol.asyncDispose]();
  throw error;
});
const { engine, url } = started;
let raw;
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
const cores = availableParallelism();
// /proc counts CPU time in clock ticks (USER_HZ).
const clockTicksPerSecond = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** CPU time (user + system) a process has used, in ms, from /proc. */
const processCpuMs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicksPerSecond;
};
const benchCpuMs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
};
/**
 * Where the CPU went during `run()`: the engine's process, this process (the marketplace and
 * the senders, or the raw multi) and clamd, in ms per bounty.
 */
async function withCpu(count, run) {
  const before = [processCpuMs(engine.pid), benchCpuMs(), processCpuMs(clamd.pid)];
  const result = await run();
  const after = [processCpuMs(engine.pid), benchCpuMs(), processCpuMs(clamd.pid)];
  const [engineMs, benchMs, clamdMs] = after.map((value, index) => (value - before[index]) / count);
  return { ...result, cpu: { engineMs, benchMs, clamdMs } };
}

/** Runs `task(index)` over `indices` with `concurrency` senders; returns seconds. */
async function timed(indices, concurrency, task) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let at = next++; at < indices.length; at = next++) await task(indices[at]);
    }),
  );
  return (performance.now() - started) / 1000;
}

async function engineRun(indices, concurrency) {
  const latencies = [];
  const seconds = await timed(indices, concurrency, async (index) => {
    const id = String(randomInt(1, 2 ** 47));
    const body = JSON.stringify({
      id,
      artifact_type: "file",
      artifact_uri: `${marketplace.base}/a/${index}`,
      expiration: new Date(Date.now() + 60_000).toISOString(),
      response_url: `${marketplace.base}/r/${id}`,
      sha256: artifacts[index].sha256,
      phase: "assertion",
      rules: { min_allowed_bid: 62500000000000000, max_allowed_bid: 1000000000000000000 },
    });
    const answered = new Promise((resolve) => waiting.set(id, resolve));
    const sent = performance.now();
    const status = await postSignedBounty({ agent, url: `${url}/`, secret, body });
    if (status !== 202) throw new Error(`engine answered ${status}`);
    const answer = JSON.parse(await answered);
    waiting.delete(id);
    if (answer.verdict !== "benign")
      throw new Error(`unexpected answer ${JSON.stringify(answer).slice(0, 300)}`);
    latencies.push(performance.now() - sent);
  });
  latencies.sort((left, right) => left - right);
  return {
    rate: indices.length / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
  };
}

async function rawRun(indices, concurrency) {
  const seconds = await timed(indices, concurrency, async (index) => {
    const result = await raw.scan(artifactFromBytes(artifacts[index].bytes));
    if (result.verdict !== "benign") throw new Error(`unexpected ${result.verdict}`);
  });
  return { rate: indices.length / seconds };
}

const rows = [];
try {
  raw = createMultiScanner([
    createYaraScanner({ engine: "auto", onDiagnostics: () => {} }),
    createClamavScanner(clamd.clientOptions()),
  ]);
  await raw.setup();
  for (const [label, , count] of sizes) {
    const { warmUp, measured } = runs.get(label);
    for (const concurrency of concurrencies) {
      await engineRun(warmUp, concurrency);
      await rawRun(warmUp, concurrency);
      const ours = await withCpu(measured.length, () => engineRun(measured, concurrency));
      const direct = await withCpu(measured.length, () => rawRun(measured, concurrency));
      rows.push({ label, concurrency, count, ours, direct });
    }
  }
  console.log(
    `\nengine: yara (bundled rules, YARA_ENGINE=auto) + clamav (one clamd, cache off), ${process.version}, ${cores} cores; distinct artifacts, downloaded over loopback HTTP; engine result cache off\n`,
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
  console.log(
    `\nWhere the CPU went, ms per bounty (engine run) or per scan (raw run); the machine has ${cores} cores:\n`,
  );
  console.log(
    "| artifact | concurrency | engine run: engine | marketplace + senders | clamd | total | raw run: multi (in this process) | clamd | total |",
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  const ms = (value) => value.toFixed(2);
  for (const { label, concurrency, ours, direct } of rows) {
    const engineTotal = ours.cpu.engineMs + ours.cpu.benchMs + ours.cpu.clamdMs;
    const rawTotal = direct.cpu.benchMs + direct.cpu.clamdMs;
    console.log(
      `| ${label} | ${concurrency} | ${ms(ours.cpu.engineMs)} | ${ms(ours.cpu.benchMs)} | ${ms(ours.cpu.clamdMs)} | ${ms(engineTotal)} | ${ms(direct.cpu.benchMs)} | ${ms(direct.cpu.clamdMs)} | ${ms(rawTotal)} |`,
    );
  }
  console.log(`\nengine peak RSS: ${(memoryOf(engine.pid).peak / 1024).toFixed(0)} MB`);
} finally {
  engine.kill("SIGTERM");
  agent.destroy();
  await raw?.close();
  await clamd[Symbol.asyncDispose]();
  marketplace.close();
}
