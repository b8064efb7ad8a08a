import { type ChildProcess, spawn } from "node:child_process";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createNetServer } from "node:net";
import { eicarBytes } from "@engine/core";
import { Redis } from "ioredis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../src/config.js";
import { type RunningEngine, type RunningWorker, startEngine, startWorker } from "../src/serve.js";
import { simulate } from "../src/simulate.js";
import { signBody } from "../src/webhook-signature.js";

// Queue mode against a real redis-server, started here with its own port and no persistence.
let redisProcess: ChildProcess;
let redisUrl: string;
const answers: Array<{ path: string; body: string }> = [];
let collector: Server;
let collectorUrl: string;

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  const port = await freePort();
  redisProcess = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  redisUrl = `redis://127.0.0.1:${port}`;
  const probe = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  probe.on("error", () => {}); // refused until redis-server listens
  await vi.waitFor(
    async () => {
      await probe.connect().catch(() => {});
      expect(await probe.ping()).toBe("PONG");
    },
    { timeout: 10_000, interval: 100 },
  );
  probe.disconnect();
  collector = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      answers.push({ path: request.url ?? "", body: Buffer.concat(chunks).toString() });
      response.writeHead(200).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  collectorUrl = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
});
afterAll(async () => {
  redisProcess?.kill("SIGKILL");
  await new Promise((resolve) => collector.close(resolve));
});

const quiet = pino({ level: "silent" });
const settings = (queue: string) => ({
  WEBHOOK_SECRET: "queue",
  PORT: "0",
  QUEUE_URL: redisUrl,
  QUEUE_NAME: queue,
  ENGINE_BACKENDS: "eicar,yara",
  WORKER_CONCURRENCY: "2",
  ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true", // the simulated marketplace answers on loopback
});

describe("queue mode (serve queues, worker scans)", () => {
  let engine: RunningEngine;
  let second: RunningEngine;
  let worker: RunningWorker;
  beforeAll(async () => {
    engine = await startEngine(loadConfig(settings("test:a")), quiet);
    second = await startEngine(loadConfig(settings("test:a")), quiet);
    worker = await startWorker(loadConfig(settings("test:a")), quiet);
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

  it("answers a bounty once even when it reaches two receivers", async () => {
    const id = 424242;
    const body = JSON.stringify({
      id,
      artifact_type: "file",
      artifact_uri: `data:application/octet-stream;base64,${eicarBytes().toString("base64")}`,
      expiration: new Date(Date.now() + 10_000).toISOString(),
      response_url: `${collectorUrl}/answers/${id}`,
    });
    const headers = {
      "content-type": "application/json",
      "x-polyswarm-event": "bounty",
      "x-polyswarm-signature": signBody("queue", body),
    };
    const first = await fetch(`${engine.url}/`, { method: "POST", body, headers });
    const again = await fetch(`${second.url}/`, { method: "POST", body, headers });
    expect(await first.json()).toEqual({ status: "ACCEPTED" });
    expect(await again.json()).toEqual({ status: "ACCEPTED", duplicate: true });
    await vi.waitFor(
      () => expect(answers.filter((answer) => answer.path === `/answers/${id}`)).toHaveLength(1),
      { timeout: 8000 },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(answers.filter((answer) => answer.path === `/answers/${id}`)).toHaveLength(1);
  });
});

describe("queue workers", () => {
  it("take back the bounties of a worker that stopped mid-bounty", async () => {
    const redis = new Redis(redisUrl);
    const id = 515151;
    const orphan = JSON.stringify({
      id: String(id),
      artifact_type: "file",
      artifact_uri: "data:,a%20benign%20orphan",
      response_url: `${collectorUrl}/answers/${id}`,
      phase: "assertion",
      expiresAt: Date.now() + 10_000,
    });
    await redis.lpush("test:b:processing:dead-worker", orphan);
    const worker = await startWorker(loadConfig(settings("test:b")), quiet);
    await vi.waitFor(
      () => expect(answers.filter((answer) => answer.path === `/answers/${id}`)).toHaveLength(1),
      { timeout: 8000 },
    );
    expect(
      JSON.parse(answers.find((answer) => answer.path === `/answers/${id}`)?.body ?? "{}").verdict,
    ).toBe("benign");
    expect(await redis.llen("test:b:processing:dead-worker")).toBe(0);
    await worker.close();
    redis.disconnect();
  });

  it("refuses to start without QUEUE_URL, naming it", async () => {
    await expect(startWorker(loadConfig({ ENGINE_BACKENDS: "eicar" }), quiet)).rejects.toThrow(
      /QUEUE_URL: required/,
    );
  });
});
