// Benchmark: a realistic repeat mix through `serve` with its embedded default (YARA + managed
// clamd), with the result cache off (CACHE_TTL_SECONDS=0) and on (the default), one fresh
// engine each, side by side in one run. 1,000 bounties over 200 distinct artifacts (64 KB,
// one in ten with EICAR at its end), popular artifacts repeated more (a Zipf-like draw, seeded),
// posted by 16 senders; each bounty's latency runs from its POST to its answer.
// Reports bounties/s, p50/p99 latency, the cache hit rate and that every bounty was answered
// once with the right verdict. clamd's own clean-file cache stays on in both runs, as in
// production (it helps the uncached run on repeats, so the gain shown is conservative).
// Usage: pnpm --filter @engine/microengine bench:cache   (after pnpm build; needs clamd)
// Environment: CACHE_BENCH_BOUNTIES (1000), CACHE_BENCH_ARTIFACTS (200), CACHE_BENCH_KB (64),
// CACHE_BENCH_SENDERS (16).
import { createHash, randomInt } from "node:crypto";
import { Agent } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { percentile, postSignedBounty, startMarketplace, startServe } from "./bench-support.mjs";

const bounties = Number(process.env.CACHE_BENCH_BOUNTIES ?? 1000);
const distinct = Number(process.env.CACHE_BENCH_ARTIFACTS ?? 200);
const artifactBytes = Number(process.env.CACHE_BENCH_KB ?? 64) * 1024;
const senders = Number(process.env.CACHE_BENCH_SENDERS ?? 16);
const secret = "cache-bench";
const say = (message) => process.stderr.write(`[cache-bench] ${message}\n`);
const eicar = Buffer.from("X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");

// A seeded generator, so both runs see the same artifacts in the same order.
let seed = 20261122;
const random = () => {
  seed = (seed * 1103515245 + 12345) % 2 ** 31;
  return seed / 2 ** 31;
};
const artifacts = Array.from({ length: distinct }, (_, index) => {
  const bytes = Buffer.alloc(artifactBytes);
  for (let offset = 0; offset < bytes.length; offset += 4)
    bytes.writeUInt32LE(Math.floor(random() * 2 ** 32), offset);
  if (index % 10 === 0) eicar.copy(bytes, bytes.length - eicar.length);
  return {
    bytes,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    expected: index % 10 === 0 ? "malicious" : "benign",
  };
});
// Zipf-like popularity: artifact k drawn with weight 1 / (k + 1).
const weights = artifacts.map((_, index) => 1 / (index + 1));
const totalWeight = weights.reduce((sum, weight) => sum + weight, 0);
const draw = () => {
  let target = random() * totalWeight;
  for (let index = 0; index < weights.length; index += 1) {
    target -= weights[index];
    if (target <= 0) return index;
  }
  return weights.length - 1;
};
const sequence = Array.from({ length: bounties }, draw);

const marketplace = await startMarketplace({ artifacts });
const { answers, base } = marketplace;

async function runOnce(label, environment) {
  const { engine, url: engineUrl } = await startServe({ secret, environment });
  try {
    const agent = new Agent({ keepAlive: true, maxSockets: senders });
    const firstId = randomInt(1_000_000, 1_000_000_000);
    const sent = [];
    const post = async (position) => {
      const index = sequence[position];
      const id = String(firstId + position);
      const body = JSON.stringify({
        id,
        artifact_type: "file",
        artifact_uri: `${base}/a/${index}`,
        expiration: new Date(Date.now() + 60_000).toISOString(),
        response_url: `${base}/r/${id}`,
        sha256: artifacts[index].sha256,
        phase: "assertion",
      });
      const bounty = { id, index, postedAt: performance.now(), status: 0 };
      sent.push(bounty);
      bounty.status = await postSignedBounty({ agent, url: `${engineUrl}/`, secret, body });
    };
    // Each sender posts its next bounty once the previous one is answered: a steady mix.
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: senders }, async () => {
        for (let position = next++; position < bounties; position = next++) {
          await post(position);
          const id = String(firstId + position);
          while (!answers.has(id)) await sleep(1);
        }
      }),
    );
    const elapsedSeconds = (performance.now() - started) / 1000;
    const metrics = await fetch(`${engineUrl}/metrics`).then((response) => response.text());
    const counter = (name) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? 0);
    const hits = counter("engine_cache_hits_total");
    const misses = counter("engine_cache_misses_total");
    agent.destroy();
    const latencies = [];
    let once = 0;
    let wrong = 0;
    for (const bounty of sent) {
      const list = answers.get(bounty.id) ?? [];
      if (list.length === 1) once += 1;
      const answer = list[0] ? JSON.parse(list[0].body) : undefined;
      if (answer?.verdict !== artifacts[bounty.index].expected) wrong += 1;
      if (list[0]) latencies.push(list[0].at - bounty.postedAt);
    }
    latencies.sort((first, second) => first - second);
    return {
      label,
      bountiesPerSecond: bounties / elapsedSeconds,
      p50: percentile(latencies, 0.5),
      p99: percentile(latencies, 0.99),
      hitRate: hits + misses > 0 ? hits / (hits + misses) : 0,
      once,
      wrong,
    };
  } finally {
    engine.kill("SIGTERM");
    await new Promise((resolve) => engine.once("exit", resolve));
  }
}

say(
  `${bounties} bounties over ${distinct} artifacts of ${artifactBytes / 1024} KB (${new Set(sequence).size} drawn), ${senders} senders`,
);
const off = await runOnce("cache off", { CACHE_TTL_SECONDS: "0" });
answers.clear();
const on = await runOnce("cache on", {});
marketplace.close();
const row = (result) =>
  `${result.label.padEnd(10)} ${result.bountiesPerSecond.toFixed(1).padStart(8)} ${result.p50.toFixed(1).padStart(8)} ${result.p99.toFixed(1).padStart(8)} ${(result.hitRate * 100).toFixed(1).padStart(7)}% ${String(result.once).padStart(6)} ${String(result.wrong).padStart(6)}`;
process.stdout.write(
  `mode        bounty/s  p50 ms   p99 ms  hit rate   once  wrong\n${row(off)}\n${row(on)}\n`,
);
process.stdout.write(
  `cache on / off: ${(on.bountiesPerSecond / off.bountiesPerSecond).toFixed(2)}x bounties/s, p50 ${(on.p50 / off.p50).toFixed(2)}x, p99 ${(on.p99 / off.p99).toFixed(2)}x\n`,
);
if (off.once !== bounties || on.once !== bounties || off.wrong + on.wrong > 0) {
  say("FAILED: some bounty was not answered exactly once with the right verdict");
  process.exitCode = 1;
}
