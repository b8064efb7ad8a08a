import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { eicarBytes } from "@engine/core";
import { Queue } from "bullmq";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunningEngine, startEngine } from "../../src/commands/serve-engine.js";
import { loadConfig } from "../../src/config/config.js";
import { signBody } from "../../src/protocol/webhook-signature.js";
import { useCollector } from "../harness/engine.js";
import { type RedisServer, startRedis } from "../harness/redis.js";

// Two `microengine worker` processes, one SIGKILLed mid-scan and restarted at once.
const cli = join(import.meta.dirname, "../../bin/microengine.cjs");
const collector = useCollector();
let redis: RedisServer;
let artifacts: Server;
let artifactBase: string;
let requests = 0;
beforeAll(async () => {
  redis = await startRedis();
  // Artifacts arrive after 800 ms, so that jobs are in flight when a worker dies.
  artifacts = createServer((request, response) => {
    requests += 1;
    const malicious = request.url?.endsWith("/eicar");
    const delay = Number(/^\/slow\/(\d+)\//.exec(request.url ?? "")?.[1] ?? 800);
    setTimeout(() => {
      if (!response.destroyed)
        response.end(malicious ? eicarBytes() : Buffer.from(`a clean file ${request.url}\n`));
    }, delay);
  });
  await new Promise<void>((resolve) => artifacts.listen(0, "127.0.0.1", resolve));
  artifactBase = `http://127.0.0.1:${(artifacts.address() as { port: number }).port}`;
});
afterAll(async () => {
  artifacts?.closeAllConnections();
  await new Promise((resolve) => artifacts?.close(resolve));
  await redis?.dispose();
});

const environment = () => ({
  ...process.env,
  WEBHOOK_SECRET: "crash",
  QUEUE_URL: redis.url,
  QUEUE_SECRET: "queue-crash-test-secret",
  QUEUE_NAME: "crash",
  ENGINE_BACKENDS: "eicar",
  WORKER_CONCURRENCY: "4",
  WORKER_PORT: "0",
  ANSWER_MARGIN_MS: "1500",
  ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
  ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
  LOG_LEVEL: "warn",
});
const startWorkerProcess = (): ChildProcess =>
  spawn(process.execPath, [cli, "worker"], { env: environment(), stdio: "ignore" });

describe("a worker killed mid-scan", () => {
  const workers: ChildProcess[] = [];
  let engine: RunningEngine;
  /** Posts a signed bounty for `artifactUri` to serve; resolves with its expiration (epoch ms). */
  const postBounty = async (id: number, artifactUri: string, lifetimeMs: number) => {
    const expiresAt = Date.now() + lifetimeMs;
    const body = JSON.stringify({
      id,
      artifact_type: "file",
      artifact_uri: artifactUri,
      expiration: new Date(expiresAt).toISOString(),
      response_url: `${collector.url}/answers/${id}`,
    });
    const response = await fetch(`${engine.url}/`, {
      method: "POST",
      body,
      headers: {
        "content-type": "application/json",
        "x-polyswarm-event": "bounty",
        "x-polyswarm-signature": signBody("crash", body),
      },
    });
    expect(response.status).toBe(202);
    return expiresAt;
  };
  afterAll(async () => {
    for (const worker of workers) worker.kill("SIGKILL");
    await engine?.close();
  });

  it("costs no bounty: every one answered before expiration, none with two verdicts", async () => {
    engine = await startEngine(
      loadConfig({ ...environment(), PORT: "0" } as Record<string, string>),
      pino({ level: "silent" }),
    );
    workers.push(startWorkerProcess(), startWorkerProcess());
    const sent: Array<{ id: number; malicious: boolean; expiresAt: number }> = [];
    for (let index = 0; index < 40; index += 1) {
      const id = 900_000 + index;
      const malicious = index % 3 === 0;
      const expiresAt = await postBounty(
        id,
        `${artifactBase}/${id}/${malicious ? "eicar" : "clean"}`,
        15_000,
      );
      sent.push({ id, malicious, expiresAt });
    }
    // Both workers are scanning (8 downloads at a time): kill one, start another at once.
    await vi.waitFor(() => expect(requests).toBeGreaterThanOrEqual(8), { timeout: 20_000 });
    const victim = workers[0] as ChildProcess;
    const killed = new Promise((resolve) => victim.once("exit", resolve));
    victim.kill("SIGKILL");
    await killed;
    workers.push(startWorkerProcess());

    await vi.waitFor(
      () => expect(sent.filter(({ id }) => collector.answersFor(id).length === 0)).toEqual([]),
      { timeout: 30_000, interval: 250 },
    );
    // Past every expiration (and the deadline watcher's moment): late duplicates would show now.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(...sent.map((bounty) => bounty.expiresAt)) - Date.now() + 1000),
    );
    const problems: string[] = [];
    let duplicates = 0;
    for (const { id, malicious, expiresAt } of sent) {
      const answers = collector.answersFor(id);
      const verdicts = new Set(answers.map((answer) => JSON.parse(answer.body).verdict));
      if (verdicts.size !== 1) problems.push(`${id}: verdicts ${[...verdicts].join(", ")}`);
      if (!verdicts.has(malicious ? "malicious" : "benign"))
        problems.push(`${id}: ${[...verdicts].join(", ")}`);
      if (answers.some((answer) => answer.at > expiresAt)) problems.push(`${id}: late`);
      duplicates += answers.length - 1;
    }
    expect(problems).toEqual([]);
    // The crash really cost jobs in flight: they stalled and another worker took them over.
    const queue = new Queue("crash", { connection: { url: redis.url } });
    const taken = (await queue.getCompleted(0, 100)).filter((job) => job.stalledCounter > 0);
    await queue.close();
    expect(taken.length).toBeGreaterThan(0);
    // Duplicates only for jobs in flight at the crash (with the same body and key).
    expect(duplicates).toBeLessThanOrEqual(4);
    console.log(
      `crash run: 40 bounties answered, ${taken.length} taken over from the dead worker, ${duplicates} duplicate POSTs`,
    );
  }, 90_000);

  it("on SIGTERM, finishes the jobs in hand, hands back what it cannot finish in time, and exits", async () => {
    engine ??= await startEngine(
      loadConfig({ ...environment(), PORT: "0" } as Record<string, string>),
      pino({ level: "silent" }),
    );
    for (const worker of workers.splice(0)) worker.kill("SIGKILL");
    const leaving = startWorkerProcess();
    workers.push(leaving);
    const post = (id: number, delayMs: number) =>
      postBounty(id, `${artifactBase}/slow/${delayMs}/${id}/clean`, 45_000);
    const quick = 990_001; // done within the grace period
    const slow = 990_002; // still downloading when the grace period ends: handed back
    await post(quick, 3_000);
    const slowExpiresAt = await post(slow, 14_000);
    // Both in hand, downloading (the worker is up and has its signal handlers: on a loaded
    // machine its start takes more than a second).
    const queue = new Queue("crash", { connection: { url: redis.url } });
    await vi.waitFor(async () => expect(await queue.getActiveCount()).toBe(2), {
      timeout: 15_000,
      interval: 100,
    });
    await queue.close();
    const exited = new Promise<number | null>((resolve) => leaving.once("exit", resolve));
    leaving.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(JSON.parse(collector.answersFor(quick)[0]?.body ?? "{}").verdict).toBe("benign");
    expect(collector.answersFor(slow)).toHaveLength(0); // handed back, not answered unknown
    // Another worker takes the handed-back job and answers it in time.
    workers.push(startWorkerProcess());
    await vi.waitFor(() => expect(collector.answersFor(slow)).toHaveLength(1), { timeout: 25_000 });
    const answer = collector.answersFor(slow)[0];
    expect(JSON.parse(answer?.body ?? "{}").verdict).toBe("benign");
    expect(answer?.at).toBeLessThanOrEqual(slowExpiresAt);
  }, 90_000);
});
