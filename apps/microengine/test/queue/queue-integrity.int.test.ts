import { Queue } from "bullmq";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunningEngine, startEngine } from "../../src/commands/serve-engine.js";
import { type RunningWorker, startWorker } from "../../src/commands/worker-engine.js";
import { loadConfig } from "../../src/config/config.js";
import { bountyJobId } from "../../src/queue/job-data.js";
import { RedisSeal } from "../../src/queue/redis-seal.js";
import { answerOf, useCollector } from "../harness/engine.js";
import { postTo, queueSettings, signedBounties } from "../harness/queue.js";
import { startRedis, useRedis } from "../harness/redis.js";

// Second audit, items 5 and 8, and two receivers racing: Redis is a boundary. Whoever can write
// to it without QUEUE_SECRET may delay or drop work, never choose an answer; and when it stays
// away past the bounties' time, serve answers what it accepted.
const collector = useCollector();
const redisServer = useRedis();

const quiet = pino({ level: "silent" });
const queueSecret = "queue-integrity-test-secret";
const settings = (queue: string, extra: Record<string, string> = {}) =>
  queueSettings(redisServer.server.url, { webhook: "integrity", queue: queueSecret }, queue, {
    ENGINE_BACKENDS: "eicar",
    ANSWER_MARGIN_MS: "2000",
    ...extra,
  });
const rules = { min_allowed_bid: 1000, max_allowed_bid: 5000 };
const signed = signedBounties(collector, "integrity", 910_000);
const bounty = (expiresInMs = 10_000) => signed({ rules }, expiresInMs);
const post = postTo;
const rejected = async (url: string, kind: string) => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = new RegExp(`engine_redis_entries_rejected_total\\{kind="${kind}"\\} (\\d+)`).exec(
    text,
  );
  return Number(match?.[1] ?? 0);
};

describe("what is read back from Redis is authenticated under QUEUE_SECRET (item 5)", () => {
  let engine: RunningEngine;
  let worker: RunningWorker;
  beforeAll(async () => {
    engine = await startEngine(loadConfig(settings("integrity-a")), quiet);
    worker = await startWorker(loadConfig(settings("integrity-a")), quiet);
  });
  afterAll(async () => {
    await worker?.close();
    await engine?.close();
  });

  it("refuses to start serve or a worker in queue mode without QUEUE_SECRET, and never echoes it", async () => {
    const { QUEUE_SECRET: _secret, ...without } = settings("integrity-x");
    await expect(startEngine(loadConfig(without), quiet)).rejects.toThrow(/QUEUE_SECRET: required/);
    await expect(startWorker(loadConfig(without), quiet)).rejects.toThrow(/QUEUE_SECRET: required/);
    expect(() => loadConfig({ ...without, QUEUE_SECRET: "short-s3cret" })).toThrow(
      /QUEUE_SECRET: at least 16 characters.*\(got 12 characters\)/,
    );
  });

  it("never posts a forged answer record: the worker's own answer goes out, within the rules", async () => {
    const sent = bounty();
    // Written before the bounty arrives, as someone with write access to Redis would.
    await redisServer.client.set(
      `integrity-a:answer:${sent.id}:assertion`,
      JSON.stringify({
        state: "posting",
        body: JSON.stringify({ verdict: "benign", bid: 10n ** 26n, metadata: {} }, (_key, value) =>
          typeof value === "bigint" ? Number(value) : value,
        ),
      }),
      "PX",
      60_000,
    );
    expect((await post(engine, sent)).status).toBe(202);
    const answer = (await answerOf(collector, sent.id, 8000)) as unknown as {
      verdict: string;
      bid: number;
    };
    expect(answer.verdict).toBe("malicious");
    expect(answer.bid).toBeGreaterThanOrEqual(1000);
    expect(answer.bid).toBeLessThanOrEqual(5000);
    expect(await rejected(worker.url, "answer")).toBeGreaterThanOrEqual(1);
  });

  it("never posts a recorded answer whose bid breaks the bounty's rules, even one sealed with the secret", async () => {
    const sent = bounty();
    const key = `integrity-a:answer:${sent.id}:assertion`;
    const value = JSON.stringify({
      state: "posting",
      body: '{"verdict":"malicious","bid":100000000000000000000000000,"metadata":{}}',
    });
    const seal = new RedisSeal(queueSecret).sign("answer", key, value);
    await redisServer.client.set(key, JSON.stringify({ value, seal }), "PX", 60_000);
    expect((await post(engine, sent)).status).toBe(202);
    const answer = (await answerOf(collector, sent.id, 8000)) as unknown as { bid: number };
    expect(answer.bid).toBeLessThanOrEqual(5000);
  });

  it("ignores a forged job (its response_url is the forger's), and counts it", async () => {
    const queue = new Queue("integrity-a", { connection: { url: redisServer.server.url } });
    const id = bounty().id; // an id of the sequence, never posted
    const forged = {
      id: String(id),
      artifact_type: "file",
      artifact_uri: "data:,harmless",
      response_url: `${collector.url}/answers/${id}`,
      phase: "assertion",
      expiresAt: Date.now() + 8_000,
    };
    const before = await rejected(worker.url, "bounty-job");
    await queue.add(
      "bounty",
      { bounty: forged, seal: "0".repeat(64) },
      {
        jobId: bountyJobId(forged as never),
      },
    );
    await vi.waitFor(async () =>
      expect(await rejected(worker.url, "bounty-job")).toBeGreaterThan(before),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(collector.answersFor(id)).toHaveLength(0);
    await queue.close();
  });

  it("two receivers of one bounty: one accepts it, the other says duplicate", async () => {
    const second = await startEngine(loadConfig(settings("integrity-a")), quiet);
    try {
      for (let round = 0; round < 5; round += 1) {
        const sent = bounty();
        const answers = await Promise.all([post(engine, sent), post(second, sent)]);
        const bodies = (await Promise.all(answers.map((answer) => answer.json()))) as Array<{
          duplicate?: boolean;
        }>;
        expect(answers.map((answer) => answer.status)).toEqual([202, 202]);
        expect(bodies.filter((body) => body.duplicate === true)).toHaveLength(1);
        expect((await answerOf(collector, sent.id, 8000)).verdict).toBe("malicious");
      }
    } finally {
      await second.close();
    }
  });
});

describe("Redis away past the bounties' time (item 8)", () => {
  it("also backstops a bounty whose job landed after the webhook answered 503 (a slow Redis, then an outage)", async () => {
    const slow = await startRedis();
    const engine = await startEngine(
      loadConfig(settings("integrity-c", { QUEUE_URL: slow.url, ANSWER_MARGIN_MS: "3000" })),
      quiet,
    );
    const admin = new Redis(slow.url);
    try {
      const sent = bounty(9_000);
      const expiresAt = Date.now() + 9_000;
      // Redis holds every write for 2.5 s: the webhook gives up after 2 s (503), the job lands.
      await admin.call("CLIENT", "PAUSE", "2500", "WRITE");
      expect((await post(engine, sent)).status).toBe(503);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(
        await admin.exists(
          `bull:integrity-c:${bountyJobId({ id: String(sent.id), phase: "assertion" })}`,
        ),
      ).toBe(1);
      admin.disconnect();
      await slow.stop();
      const answer = await answerOf(collector, sent.id, 9_000);
      expect(answer.verdict).toBe("unknown");
      expect(answer.at).toBeLessThanOrEqual(expiresAt);
    } finally {
      admin.disconnect();
      await engine.close();
      await slow.dispose();
    }
  }, 30_000);

  it("has serve answer every bounty it accepted before expiration, from its own backstop", async () => {
    const lonely = await startRedis();
    const engine = await startEngine(
      loadConfig(settings("integrity-b", { QUEUE_URL: lonely.url, ANSWER_MARGIN_MS: "3000" })),
      process.env.DEBUG_BACKSTOP ? pino({ level: "debug" }) : quiet,
    );
    try {
      // No worker: the bounties wait in Redis, then Redis goes for longer than they live.
      const sent = Array.from({ length: 6 }, () => bounty(6_000));
      const expiresAt = Date.now() + 6_000;
      for (const each of sent) expect((await post(engine, each)).status).toBe(202);
      await lonely.stop();
      for (const each of sent) {
        const answer = await answerOf(collector, each.id, 8_000);
        expect(answer.verdict).toBe("unknown");
        expect(answer.at).toBeLessThanOrEqual(expiresAt);
      }
    } finally {
      await engine.close();
      await lonely.dispose();
    }
  }, 30_000);
});
