import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { eicarBytes } from "@engine/core";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunningEngine, startEngine } from "../../src/commands/serve-engine.js";
import { simulate } from "../../src/commands/simulate/simulation.js";
import {
  defaultWorkerPort,
  type RunningWorker,
  startWorker,
} from "../../src/commands/worker-engine.js";
import { loadConfig } from "../../src/config/config.js";
import { noWorkerWarning } from "../../src/queue/bounty-receiver.js";
import { bountyJobId, toJobData } from "../../src/queue/job-data.js";
import { RedisSeal } from "../../src/queue/redis-seal.js";
import { answerOf, useCollector } from "../harness/engine.js";
import { postTo, queueSettings, signedBounties } from "../harness/queue.js";
import { startRedis, useRedis } from "../harness/redis.js";

// Queue mode on BullMQ against a real redis-server, started here on its own port.
const collector = useCollector();
const redisServer = useRedis();

const quiet = pino({ level: "silent" });
const queueSecret = "queue-mode-test-secret";
const settings = (queue: string, extra: Record<string, string> = {}) =>
  queueSettings(redisServer.server.url, { webhook: "queue", queue: queueSecret }, queue, {
    ENGINE_BACKENDS: "eicar,yara",
    WORKER_CONCURRENCY: "2",
    ANSWER_MARGIN_MS: "1000",
    ...extra,
  });
const bounty = signedBounties(collector, "queue", 700_000);
const post = postTo;

describe("queue mode (serve queues, workers scan)", () => {
  let engine: RunningEngine;
  let second: RunningEngine;
  let worker: RunningWorker;
  beforeAll(async () => {
    engine = await startEngine(loadConfig(settings("test-a")), quiet);
    second = await startEngine(loadConfig(settings("test-a")), quiet);
    worker = await startWorker(loadConfig(settings("test-a")), quiet);
  });
  afterAll(async () => {
    await worker?.close();
    await engine?.close();
    await second?.close();
  });

  it("answers the simulator's bounties through the queue", async () => {
    const results = await simulate({
      engineUrl: `${engine.url}/`,
      secret: "queue",
      expirationSeconds: 20,
    });
    expect(
      results.map((result) => [
        result.artifact,
        result.phase,
        result.verdict,
        result.problems.join("; "),
      ]),
    ).toEqual([
      ["eicar.com", "assertion", "malicious", ""],
      ["eicar.com", "arbitration", "malicious", ""],
      ["benign.txt", "assertion", "benign", ""],
    ]);
  });

  it("makes one job of a bounty that reaches two receivers, and answers it once", async () => {
    const sent = bounty();
    const first = await post(engine, sent);
    const again = await post(second, sent);
    expect(await first.json()).toEqual({ status: "ACCEPTED" });
    expect(await again.json()).toEqual({ status: "ACCEPTED", duplicate: true });
    expect((await answerOf(collector, sent.id, 8000)).verdict).toBe("malicious");
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.answersFor(sent.id)).toHaveLength(1);
  });

  it("shares the result cache in Redis: a repeat is answered from it, by whichever worker", async () => {
    const content = Buffer.from(
      `X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`,
    );
    const uri = `data:application/octet-stream;base64,${content.toString("base64")}`;
    const first = bounty({
      artifact_uri: uri,
      sha256: createHash("sha256").update(content).digest("hex"),
    });
    await post(engine, first);
    const firstAnswer = await answerOf(collector, first.id, 8000);
    const again = bounty({ artifact_uri: uri });
    await post(second, again);
    const againAnswer = await answerOf(collector, again.id, 8000);
    expect([firstAnswer.verdict, againAnswer.verdict]).toEqual(["malicious", "malicious"]);
    expect(againAnswer.metadata.cache).toMatchObject({ hit: true });
    const client = new Redis(redisServer.server.url);
    try {
      expect((await client.keys("{test-a:result}:*")).length).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });

  it("reports the queue on serve's /readyz and the worker's /readyz and /metrics", async () => {
    const ready = (await (await fetch(`${engine.url}/readyz`)).json()) as {
      checks: { queue: unknown };
    };
    expect(ready.checks.queue).toMatchObject({ ok: true, jobs: { waiting: expect.any(Number) } });
    const workerReady = await fetch(`${worker.url}/readyz`);
    expect(workerReady.status).toBe(200);
    expect(
      ((await workerReady.json()) as { checks: { queue: { ok: boolean } } }).checks.queue.ok,
    ).toBe(true);
    const metrics = await (await fetch(`${worker.url}/metrics`)).text();
    expect(metrics).toMatch(/engine_queue_jobs\{state="waiting"\} \d+/);
    expect(metrics).toMatch(/engine_queue_wait_seconds_count \d+/);
    expect(metrics).toMatch(/engine_scans_total\{backend="eicar",verdict="malicious"\} \d+/);
  });

  it("answers a poison job unknown once, dead-letters it, and keeps working", async () => {
    const queue = new Queue("test-a", { connection: { url: redisServer.server.url } });
    const id = bounty().id; // an id of the sequence, never posted
    const valid = {
      id: String(id),
      artifact_type: "file",
      artifact_uri: "data:,x",
      response_url: `${collector.url}/answers/${id}`,
      phase: "assertion",
      expiresAt: Date.now() + 15_000,
    };
    // A job from an incompatible release (sealed with the same secret): its bounty no longer
    // validates, on every attempt.
    const jobId = bountyJobId(valid as never);
    const incompatible = { ...valid, artifact_type: "email" };
    await queue.add(
      "bounty",
      {
        bounty: incompatible,
        seal: new RedisSeal(queueSecret).sign("bounty-job", jobId, JSON.stringify(incompatible)),
      },
      { jobId, attempts: 3, backoff: { type: "fixed", delay: 100 } },
    );
    const answer = await answerOf(collector, id, 8000);
    expect(answer.verdict).toBe("unknown");
    expect(answer.metadata.comments?.[0]).toBe("ERROR:INTERNAL");
    await vi.waitFor(async () => expect(await queue.getJobCounts("failed")).toEqual({ failed: 1 }));
    const failed = (await queue.getFailed())[0];
    expect(failed?.attemptsMade).toBe(3);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.answersFor(id)).toHaveLength(1);
    // The worker is alive and answers the next bounty.
    const next = bounty();
    await post(engine, next);
    expect((await answerOf(collector, next.id, 8000)).verdict).toBe("malicious");
    const metrics = await (await fetch(`${worker.url}/metrics`)).text();
    expect(metrics).toMatch(/engine_queue_events_total\{event="dead_lettered"\} 1/);
    expect(metrics).toMatch(/engine_queue_events_total\{event="retried"\} 2/);
    await queue.close();
  });

  it('keeps a metadata string like "12n" a string, and the bids exact, through the job', () => {
    const data = toJobData(
      {
        id: "1",
        artifact_type: "file",
        artifact_uri: "data:,x",
        response_url: "https://m.example/a",
        phase: "assertion",
        metadata: { tag: "12n", big: 37287461917542145n },
        rules: { min_allowed_bid: 1n, max_allowed_bid: 1_000_000_000_000_000_001n },
        expiresAt: Date.now() + 1000,
      },
      new RedisSeal(queueSecret),
    );
    const round = JSON.parse(JSON.stringify(data));
    expect(round.bounty.metadata).toEqual({ tag: "12n", big: "37287461917542145" });
    expect(round.bounty.rules).toEqual({
      min_allowed_bid: "1",
      max_allowed_bid: "1000000000000000001",
    });
  });
});

describe("two workers on one machine with default settings", () => {
  it("starts the second on a free operations port and says which", async () => {
    // Whoever holds 8081 (a first worker, or this stand-in), the next worker must start.
    const holder = createServer();
    await new Promise<void>((resolve) => {
      holder.once("error", () => resolve()); // already taken by someone else: as good
      holder.listen(defaultWorkerPort, "127.0.0.1", () => resolve());
    });
    const { WORKER_PORT: _unset, ...defaults } = settings("test-ports");
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => warnings.push(line) });
    const workers: RunningWorker[] = [];
    try {
      workers.push(await startWorker(loadConfig(defaults), logger));
      workers.push(await startWorker(loadConfig(defaults), logger));
      const ports = workers.map((worker) => new URL(worker.url).port);
      expect(ports).not.toContain(String(defaultWorkerPort));
      expect(new Set(ports).size).toBe(2);
      for (const worker of workers) expect((await fetch(`${worker.url}/healthz`)).status).toBe(200);
      const taken = warnings.filter((line) => line.includes(`port ${defaultWorkerPort} is taken`));
      expect(taken).toHaveLength(2);
      expect(taken[0]).toContain(workers[0]?.url);
      expect(taken[0]).toContain("WORKER_PORT");
    } finally {
      for (const worker of workers) await worker.close();
      holder.close();
    }
  });

  it("fails on a WORKER_PORT that is set and taken, naming the port", async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", () => resolve()));
    const port = String((holder.address() as { port: number }).port);
    try {
      await expect(
        startWorker(loadConfig(settings("test-ports", { WORKER_PORT: port })), quiet),
      ).rejects.toThrow(/EADDRINUSE/);
    } finally {
      holder.close();
    }
  });
});

describe("queue mode without workers", () => {
  it("has serve's deadline watcher answer unknown before expiration when no worker takes the bounty", async () => {
    const engine = await startEngine(
      loadConfig(settings("test-b", { ANSWER_MARGIN_MS: "2000" })),
      quiet,
    );
    try {
      const sent = bounty({}, 4_000);
      const expiresAt = Date.now() + 4_000;
      expect((await post(engine, sent)).status).toBe(202);
      const answer = await answerOf(collector, sent.id, 5_000);
      expect(answer.verdict).toBe("unknown");
      expect(answer.metadata.comments).toEqual(["ERROR:TIMEOUT", "no worker answered in time"]);
      expect(answer.at).toBeLessThanOrEqual(expiresAt);
    } finally {
      await engine.close();
    }
  });

  it("keeps serve ready while jobs wait with no worker, and says so in /readyz and a metric", async () => {
    const engine = await startEngine(loadConfig(settings("test-idle")), quiet);
    let worker: RunningWorker | undefined;
    const readyz = async () => {
      const response = await fetch(`${engine.url}/readyz`);
      const body = (await response.json()) as { checks: { queue: Record<string, unknown> } };
      return { status: response.status, queue: body.checks.queue };
    };
    // Reads come every second: wait for one that shows `expected`.
    const until = async (expected: (queue: Record<string, unknown>) => boolean) => {
      for (let tries = 0; tries < 50; tries += 1) {
        const state = await readyz();
        if (expected(state.queue)) return state;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return readyz();
    };
    try {
      expect((await post(engine, bounty({}, 20_000))).status).toBe(202);
      const idle = await until((queue) => queue.workers === 0 && "warning" in queue);
      expect(idle.status).toBe(200);
      expect(idle.queue).toMatchObject({ ok: true, workers: 0, warning: noWorkerWarning });
      const metrics = await (await fetch(`${engine.url}/metrics`)).text();
      expect(metrics).toContain('engine_queue_workers{queue="test-idle"} 0');
      worker = await startWorker(loadConfig(settings("test-idle")), quiet);
      const served = await until((queue) => queue.workers === 1 && !("warning" in queue));
      expect(served.status).toBe(200);
      expect(served.queue).not.toHaveProperty("warning");
    } finally {
      await worker?.close();
      await engine.close();
    }
  });

  it("starts serve's backends at its first POST /scan, not at start (the workers scan the bounties)", async () => {
    const engine = await startEngine(loadConfig(settings("test-lazy")), quiet);
    const checks = async () =>
      ((await (await fetch(`${engine.url}/readyz`)).json()) as { checks: Record<string, unknown> })
        .checks;
    try {
      expect(await checks()).toEqual({
        backends: { ok: true, note: expect.stringContaining("first POST /scan") },
        queue: expect.objectContaining({ ok: true }),
      });
      const form = new FormData();
      form.append("file", new Blob([eicarBytes()]), "eicar.com");
      const scanned = await fetch(`${engine.url}/scan`, { method: "POST", body: form });
      expect(scanned.status).toBe(200);
      expect(((await scanned.json()) as { verdict: string }).verdict).toBe("malicious");
      await new Promise((resolve) => setTimeout(resolve, 1_100)); // the probe's reuse
      expect(Object.keys(await checks()).sort()).toEqual(["eicar", "queue", "yara"]);
    } finally {
      await engine.close();
    }
  });

  it("refuses to start a worker without QUEUE_URL, naming it", async () => {
    await expect(startWorker(loadConfig({ ENGINE_BACKENDS: "eicar" }), quiet)).rejects.toThrow(
      /QUEUE_URL: required/,
    );
  });
});

describe("Redis restarted mid-run (appendonly)", () => {
  it("loses nothing: serve answers 503 while Redis is down, and every accepted bounty is answered once", async () => {
    const durable = await startRedis({ appendonly: true });
    // Artifacts that take 1.5 s to arrive: the first bounties are in a worker's hands when Redis goes.
    const slowServer = createServer((_request, response) => {
      setTimeout(() => response.end(eicarBytes()), 1_500);
    });
    await new Promise<void>((resolve) => slowServer.listen(0, "127.0.0.1", resolve));
    const slowUri = `http://127.0.0.1:${(slowServer.address() as { port: number }).port}/eicar`;
    const config = loadConfig({
      ...settings("test-c"),
      QUEUE_URL: durable.url,
      ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
    });
    const engine = await startEngine(config, quiet);
    const worker = await startWorker(config, quiet);
    try {
      const before = Array.from({ length: 5 }, () => bounty({ artifact_uri: slowUri }, 20_000));
      for (const sent of before) expect((await post(engine, sent)).status).toBe(202);
      await new Promise((resolve) => setTimeout(resolve, 300)); // taken, downloading
      await durable.stop();
      const during = Array.from({ length: 3 }, () => bounty({}, 20_000));
      const statuses = [];
      for (const sent of during) {
        const response = await post(engine, sent);
        statuses.push(response.status);
        if (response.status === 503) expect(response.headers.get("retry-after")).toBe("5");
      }
      expect(statuses).toEqual([503, 503, 503]);
      await durable.start();
      // The marketplace retries what got 503.
      await vi.waitFor(
        async () => {
          for (const sent of during) expect((await post(engine, sent)).status).toBe(202);
        },
        { timeout: 10_000, interval: 500 },
      );
      for (const sent of [...before, ...during]) {
        const answer = await answerOf(collector, sent.id, 20_000);
        expect(answer.verdict).toBe("malicious");
      }
      // Past every expiration (and the deadline watcher's moment): one verdict per bounty.
      const lastExpiration = Date.now() + 20_000;
      await new Promise((resolve) => setTimeout(resolve, lastExpiration - Date.now()));
      for (const sent of [...before, ...during]) {
        const verdicts = new Set(
          collector.answersFor(sent.id).map((answer) => JSON.parse(answer.body).verdict),
        );
        expect([...verdicts]).toEqual(["malicious"]);
      }
    } finally {
      await worker.close();
      await engine.close();
      await durable.dispose();
      slowServer.closeAllConnections();
      slowServer.close();
    }
  }, 90_000);
});
