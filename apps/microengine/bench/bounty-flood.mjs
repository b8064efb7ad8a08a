// Benchmark: a flood of bounties against `serve` with its embedded default (YARA + managed clamd).
// 1,500 bounties of 256 KB posted by 50 senders, artifacts served after 0.5 s, expiration 25 s.
// Reports accepted, answered once, late, lost, /healthz worst latency (polled from its own
// process every 50 ms) and the engine's peak RSS. Goals: all answered once before expiration,
// /healthz under 100 ms, peak RSS under 320 MB.
// Usage: pnpm --filter @engine/microengine bench:flood   (after pnpm build; needs clamd installed)
// Environment: FLOOD_BOUNTIES (1500), FLOOD_SENDERS (50), FLOOD_ARTIFACT_KB (256),
// FLOOD_DELAY_MS (500), FLOOD_EXPIRATION_S (25), FLOOD_NODE_ARGS (node flags for the engine,
// e.g. "--cpu-prof"); any engine variable (BOUNTY_CONCURRENCY, ...).
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { Agent } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import {
  memoryOf,
  percentile,
  postSignedBounty,
  startMarketplace,
  startServe,
} from "./bench-support.mjs";

const bounties = Number(process.env.FLOOD_BOUNTIES ?? 1500);
const senders = Number(process.env.FLOOD_SENDERS ?? 50);
const artifactBytes = Number(process.env.FLOOD_ARTIFACT_KB ?? 256) * 1024;
const artifactDelayMs = Number(process.env.FLOOD_DELAY_MS ?? 500);
const expirationMs = Number(process.env.FLOOD_EXPIRATION_S ?? 25) * 1000;
const secret = "flood-secret";
const say = (message) => process.stderr.write(`[flood] ${message}\n`);
const megabytes = (kilobytes) => `${(kilobytes / 1024).toFixed(0)} MB`;

// Distinct random artifacts, served after a delay; answers collected on loopback.
const artifacts = Array.from({ length: bounties }, () => {
  const bytes = randomBytes(artifactBytes);
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
});
const marketplace = await startMarketplace({
  artifacts,
  delayMs: artifactDelayMs,
  clock: Date.now,
});
const { answers, base } = marketplace;

// The engine as operators run it, in its own process (its RSS is its own).
const nodeArguments = (process.env.FLOOD_NODE_ARGS ?? "").split(" ").filter(Boolean); // e.g. --cpu-prof
const { engine, url: engineUrl } = await startServe({
  secret,
  nodeArguments,
  environment: { LOG_LEVEL: process.env.LOG_LEVEL ?? "error" },
  stdout: process.env.FLOOD_NODE_ARGS ? "inherit" : "ignore",
});
try {
  await sleep(1000);
  const idle = memoryOf(engine.pid);
  await fetch(`${engineUrl}/metrics`).then((response) => response.text()); // resets the lag histogram

  // /healthz from its own process, so the driver's load does not delay the polls.
  const poller = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const latencies = []; let on = true; process.stdin.on("data", () => {}); process.stdin.on("end", () => { on = false; });
       while (on) { const began = performance.now();
         await fetch(process.argv[1]).then((r) => r.arrayBuffer(), () => {});
         latencies.push(performance.now() - began); await new Promise((r) => setTimeout(r, 50)); }
       process.stdout.write(JSON.stringify(latencies));`,
      `${engineUrl}/healthz`,
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  let pollerOutput = "";
  poller.stdout.on("data", (chunk) => {
    pollerOutput += chunk;
  });
  let peakRss = idle.rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, memoryOf(engine.pid).rss);
  }, 100);

  const agent = new Agent({ keepAlive: true, maxSockets: senders });
  const sent = [];
  const firstId = randomInt(1_000_000, 1_000_000_000);
  const post = async (index) => {
    const id = String(firstId + index);
    const expiresAt = Date.now() + expirationMs;
    const body = JSON.stringify({
      id,
      artifact_type: "file",
      artifact_uri: `${base}/a/${index}`,
      expiration: new Date(expiresAt).toISOString(),
      response_url: `${base}/r/${id}`,
      sha256: artifacts[index].sha256,
      phase: "assertion",
    });
    const bounty = { id, expiresAt, status: 0 };
    sent.push(bounty);
    bounty.status = await postSignedBounty({ agent, url: `${engineUrl}/`, secret, body });
  };
  const floodStarted = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: senders }, async () => {
      for (let index = next++; index < bounties; index = next++) await post(index);
    }),
  );
  say(`posted ${sent.length} in ${((Date.now() - floodStarted) / 1000).toFixed(1)} s`);
  const lastExpiration = Math.max(...sent.map((bounty) => bounty.expiresAt));
  while (Date.now() < lastExpiration + 2000) await sleep(500);
  clearInterval(sampler);
  const metricsText = await fetch(`${engineUrl}/metrics`).then((response) => response.text());
  const loopLag = Number(
    /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(metricsText)?.[1] ?? Number.NaN,
  );
  poller.stdin.end();
  await new Promise((resolve) => poller.once("exit", resolve));
  const health = JSON.parse(pollerOutput || "[]").sort((a, b) => a - b);
  const end = memoryOf(engine.pid);
  agent.destroy();

  const accepted = sent.filter((bounty) => bounty.status === 202);
  const refused = sent.length - accepted.length;
  let once = 0;
  let more = 0;
  let late = 0;
  let lost = 0;
  let overloaded = 0;
  const verdicts = {};
  const reasons = {};
  for (const bounty of accepted) {
    const list = answers.get(bounty.id) ?? [];
    if (list.length === 0) lost += 1;
    else if (list.length === 1) once += 1;
    else more += 1;
    if (list.some((answer) => answer.at > bounty.expiresAt)) late += 1;
    const first = list[0] ? JSON.parse(list[0].body) : undefined;
    if (first) verdicts[first.verdict] = (verdicts[first.verdict] ?? 0) + 1;
    if (first?.metadata?.comments?.includes("SKIPPED:OVERLOADED")) overloaded += 1;
    if (first?.verdict === "unknown") {
      const reason = first.metadata?.comments?.[0] ?? "(none)";
      reasons[reason] = (reasons[reason] ?? 0) + 1;
    }
  }
  const rows = [
    ["bounties posted (senders)", `${sent.length} (${senders})`],
    ["accepted 202 / refused", `${accepted.length} / ${refused}`],
    ["answered once", once],
    ["answered more than once", more],
    ["answered late", late],
    ["lost (accepted, never answered)", lost],
    [
      "verdicts",
      Object.entries(verdicts)
        .map(([verdict, count]) => `${verdict} ${count}`)
        .join(", "),
    ],
    ["answered SKIPPED:OVERLOADED", overloaded],
    [
      "unknown, by first comment",
      Object.entries(reasons)
        .map(([reason, count]) => `${reason} ${count}`)
        .join(", ") || "-",
    ],
    [
      "/healthz p50 / p99 / worst",
      `${percentile(health, 0.5).toFixed(1)} / ${percentile(health, 0.99).toFixed(1)} / ${health.at(-1)?.toFixed(1)} ms (${health.length} polls)`,
    ],
    ["engine event-loop delay, worst (prom-client)", `${(loopLag * 1000).toFixed(1)} ms`],
    [
      "engine RSS idle / peak",
      `${megabytes(idle.rss)} / ${megabytes(Math.max(peakRss, end.peak))}`,
    ],
  ];
  process.stdout.write(
    `\n| flood: ${bounties} x ${artifactBytes / 1024} KB, served after ${artifactDelayMs} ms, expiration ${expirationMs / 1000} s | |\n| --- | --- |\n${rows.map(([name, value]) => `| ${name} | ${value} |`).join("\n")}\n`,
  );
} finally {
  engine.kill("SIGTERM");
  await new Promise((resolve) => engine.once("exit", resolve));
  marketplace.close();
}
