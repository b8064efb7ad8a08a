import { createEicarScanner, eicarBytes, type Scanner } from "@engine/core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import type { EngineBackends } from "../../src/backends/build-backends.js";
import { loadConfig } from "../../src/config/config.js";
import { createServer } from "../../src/http/server.js";
import { createWorkerServer } from "../../src/http/worker-server.js";
import type { BountyIntake, IntakeLoad } from "../../src/intake/bounty-intake.js";
import { createMetrics } from "../../src/operations/metrics.js";
import { engineWith } from "../harness/engine.js";

const logger = pino({ level: "silent" });

/**
 * Backends of one running backend whose health is `ok`, the cache `redis`; it states no
 * coverage (counted as real signatures) unless `coverage` is given.
 */
function backendsWith(ok: boolean, coverage?: "test-signatures"): EngineBackends {
  const scanner = createEicarScanner();
  const backend: EngineBackend = {
    name: "probe",
    scanner: { name: "probe" } as Scanner,
    status: { name: "probe", running: true, reason: "test" },
    health: async () => ({ ok, note: "probed" }),
    ...(coverage ? { coverage: () => coverage } : {}),
  };
  return {
    scanner,
    multi: scanner as unknown as EngineBackends["multi"],
    cache: "redis",
    running: [backend],
    statuses: [],
    reload: async () => true,
    dispose: async () => {},
  };
}

/** An intake of fixed load, in queue mode when `queue` is given. */
function intakeWith(
  load: IntakeLoad,
  queue?: { ok: boolean; jobs: Record<string, number> },
): BountyIntake {
  return {
    submit: async () => "accepted",
    responseRefusal: () => undefined,
    inFlight: 3,
    load: () => load,
    ...(queue ? { queueState: async () => queue } : {}),
    drain: async () => {},
  };
}

const idle: IntakeLoad = {
  running: 0,
  concurrency: 8,
  waiting: 0,
  backlog: 16,
  open: 0,
  saturated: false,
};

async function serveReadiness(
  backendsOk: boolean,
  intake: BountyIntake,
  coverage?: "test-signatures",
) {
  const app = await createServer({
    config: loadConfig({ WEBHOOK_SECRET: "secret", SCAN_API_CONCURRENCY: "2" }),
    backends: backendsWith(backendsOk, coverage),
    processor: intake,
    metrics: createMetrics(),
    logger,
  });
  const response = await app.inject({ method: "GET", url: "/readyz" });
  await app.close();
  return response;
}

async function workerReadiness(backendsOk: boolean, taking: boolean) {
  const app = await createWorkerServer({
    backends: backendsWith(backendsOk),
    worker: { counts: { waiting: 4, active: 1 }, running: () => taking, close: async () => {} },
    metrics: createMetrics(),
    logger,
  });
  const response = await app.inject({ method: "GET", url: "/readyz" });
  await app.close();
  return response;
}

const threadPool = Number(process.env.UV_THREADPOOL_SIZE) || 4;
const scanApi = { running: 0, concurrency: 2, waiting: 0, backlog: 64 };
const probed = { probe: { ok: true, note: "probed" } };

/** Serve's /readyz body of an idle intake, as text: its fields in their order. */
function serveBody(status: string, checks: Record<string, unknown>): string {
  return JSON.stringify({
    status,
    inFlight: 3,
    load: idle,
    scanApi,
    checks,
    threadPool,
    cache: "redis",
    coverage: "signatures",
  });
}

describe("serve's /readyz", () => {
  it("reports the intake's load, the scan API, the checks, the thread pool and the cache, in that order", async () => {
    const response = await serveReadiness(true, intakeWith(idle));
    expect(response.statusCode).toBe(200);
    expect(response.body).toBe(serveBody("ready", probed));
  });

  it("is 503 saturated while the backlog is full, and 503 not ready when a backend or the queue is down", async () => {
    const full = { ...idle, saturated: true };
    const saturated = await serveReadiness(true, intakeWith(full));
    expect(saturated.statusCode).toBe(503);
    expect(saturated.json()).toMatchObject({ status: "saturated", load: full });
    const backendDown = await serveReadiness(false, intakeWith(full));
    expect(backendDown.statusCode).toBe(503);
    expect(backendDown.json().status).toBe("not ready");
    const queue = { ok: false, jobs: { waiting: 7 } };
    const queueDown = await serveReadiness(true, intakeWith(idle, queue));
    expect(queueDown.statusCode).toBe(503);
    expect(queueDown.body).toBe(serveBody("not ready", { ...probed, queue }));
  });
});

describe("/readyz's coverage", () => {
  it("real-coverage engine: says coverage signatures, no note", async () => {
    const response = await serveReadiness(true, intakeWith(idle));
    expect(response.json()).toMatchObject({ status: "ready", coverage: "signatures" });
    expect(response.json()).not.toHaveProperty("coverageNote");
  });

  it("test-signature engine: still 200 ready, and says test-signatures with what it means", async () => {
    const response = await serveReadiness(true, intakeWith(idle), "test-signatures");
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      status: "ready",
      coverage: "test-signatures",
      coverageNote: "test signatures only: benign answers bid the minimum",
    });
  });
});

describe("a worker's /readyz", () => {
  it("reports the checks with the queue taking jobs and its counts, and the cache", async () => {
    const response = await workerReadiness(true, true);
    expect(response.statusCode).toBe(200);
    expect(response.body).toBe(
      JSON.stringify({
        status: "ready",
        checks: { ...probed, queue: { ok: true, jobs: { waiting: 4, active: 1 } } },
        cache: "redis",
        coverage: "signatures",
      }),
    );
  });

  it("is 503 not ready when it takes no jobs or a backend is down", async () => {
    const idleWorker = await workerReadiness(true, false);
    expect(idleWorker.statusCode).toBe(503);
    expect(idleWorker.json()).toMatchObject({
      status: "not ready",
      checks: { queue: { ok: false } },
    });
    const backendDown = await workerReadiness(false, true);
    expect(backendDown.statusCode).toBe(503);
    expect(backendDown.json().status).toBe("not ready");
  });
});

describe("the scan API and operations", () => {
  it("scans a raw body and a multipart upload, and reports health, readiness and metrics", async () => {
    const { app } = await engineWith([createEicarScanner()], { SCAN_API_TOKEN: "token" });
    expect(
      (
        await app.inject({
          method: "POST",
          url: "/scan",
          payload: eicarBytes(),
          headers: { "content-type": "application/octet-stream" },
        })
      ).statusCode,
    ).toBe(401);
    const raw = await app.inject({
      method: "POST",
      url: "/scan",
      payload: eicarBytes(),
      headers: { "content-type": "application/octet-stream", authorization: "Bearer token" },
    });
    expect(raw.json()).toMatchObject({
      verdict: "malicious",
      metadata: { backends: [{ name: "eicar", verdict: "malicious" }] },
    });
    const boundary = "----engine";
    const multipart = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="hello.txt"\r\nContent-Type: text/plain\r\n\r\n`,
      ),
      Buffer.from("hello"),
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const upload = await app.inject({
      method: "POST",
      url: "/scan",
      payload: multipart,
      headers: {
        "content-type": `multipart/form-data; boundary=${boundary}`,
        authorization: "Bearer token",
      },
    });
    expect(upload.json()).toMatchObject({ verdict: "benign" });
    expect((await app.inject({ method: "GET", url: "/healthz" })).json()).toEqual({ status: "ok" });
    expect((await app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
    const metrics = (await app.inject({ method: "GET", url: "/metrics" })).body;
    expect(metrics).toMatch(/engine_scans_total\{backend="eicar",verdict="malicious"\} 1/);
    expect(metrics).toMatch(/engine_bounties_dropped_total 0/);
    await app.close();
  });
});
