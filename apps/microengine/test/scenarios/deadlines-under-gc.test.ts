import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createEicarScanner, type Scanner } from "@engine/core";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { ResponseDelivery } from "../../src/net/response-delivery.js";
import { answerOf, bountyBody, engineWith, postBounty, useCollector } from "../harness/engine.js";

// Second audit, item 6: on Node 20, `AbortSignal.any([..., AbortSignal.timeout(ms)])` lets the
// garbage collector take the timeout signal before it fires (nodejs/node#57736), so a deadline
// built that way never comes. These tests force collections while they wait: without
// `--expose-gc` (vitest.shared.ts passes it) they would pass on the broken code too, so they
// refuse to run without it.
const collect = (globalThis as { gc?: () => void }).gc;

/** Runs `work` while the garbage collector runs every 20 ms. */
async function underGcPressure<T>(work: () => Promise<T>): Promise<T> {
  if (!collect) throw new Error("these tests need node --expose-gc (see vitest.shared.ts)");
  const gc = collect;
  const pressure = setInterval(() => gc(), 20);
  try {
    return await work();
  } finally {
    clearInterval(pressure);
  }
}

/** An HTTP server that accepts requests and never answers them (a stalled artifact server). */
async function startStalledServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer(() => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const collector = useCollector();
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("deadlines survive garbage collection (second audit, item 6)", () => {
  it("cuts a stalled download at the bounty's deadline and answers before expiration", async () => {
    const stalled = await startStalledServer();
    cleanups.push(() => stalled.close());
    const { app, processor } = await engineWith([createEicarScanner()], {
      ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
    });
    cleanups.push(
      () => app.close(),
      () => processor.drain(),
    );
    const { id, text } = bountyBody(collector, { artifact_uri: `${stalled.url}/a.bin` }, 2500);
    const expiresAt = Date.now() + 2500;
    await postBounty(app, text);
    const answer = await underGcPressure(() => answerOf(collector, id, 3500));
    expect(answer.at).toBeLessThanOrEqual(expiresAt);
    expect(answer.verdict).toBe("unknown");
    expect(answer.metadata.comments).toContain("ERROR:TIMEOUT");
  });

  it("answers a bounty waiting for a slot SKIPPED:OVERLOADED at its deadline, not when the slot frees up", async () => {
    const stalled = await startStalledServer();
    cleanups.push(() => stalled.close());
    const { app, processor } = await engineWith([createEicarScanner()], {
      ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
      BOUNTY_CONCURRENCY: "1",
      BOUNTY_BACKLOG: "4",
    });
    cleanups.push(
      () => app.close(),
      () => processor.drain(),
    );
    // The first holds the only slot for 8 s (its download stalls until its own deadline).
    const holder = bountyBody(collector, { artifact_uri: `${stalled.url}/a.bin` }, 8500);
    await postBounty(app, holder.text);
    const waiter = bountyBody(collector, {}, 2500);
    const expiresAt = Date.now() + 2500;
    await postBounty(app, waiter.text);
    const answer = await underGcPressure(() => answerOf(collector, waiter.id, 3500));
    expect(answer.at).toBeLessThanOrEqual(expiresAt);
    expect(answer.metadata.comments).toContain("SKIPPED:OVERLOADED");
    // The waiter left the backlog: the gauge says so at once.
    expect(processor.load().waiting).toBe(0);
  });

  it("gives up a /scan slot wait at timeout_ms", async () => {
    let release: () => void = () => {};
    const holding: Scanner = {
      name: "holding",
      scan: () =>
        new Promise((resolve) => {
          release = () =>
            resolve({ verdict: "benign", confidence: 1, metadata: { malware_family: "" } });
        }),
      [Symbol.asyncDispose]: async () => {},
    };
    const { app, processor } = await engineWith([holding], {
      SCAN_API_CONCURRENCY: "1",
      SCAN_API_BACKLOG: "4",
    });
    cleanups.push(
      () => app.close(),
      () => processor.drain(),
    );
    const first = app.inject({
      method: "POST",
      url: "/scan?timeout_ms=20000",
      payload: "x",
      headers: { "content-type": "application/octet-stream" },
    });
    await new Promise((resolve) => setTimeout(resolve, 100)); // the first holds the slot
    const started = Date.now();
    const second = await underGcPressure(() =>
      app.inject({
        method: "POST",
        url: "/scan?timeout_ms=800",
        payload: "x",
        headers: { "content-type": "application/octet-stream" },
      }),
    );
    expect(second.statusCode).toBe(503);
    expect(second.json().error.code).toBe("OVERLOADED");
    expect(Date.now() - started).toBeLessThan(3_000);
    release();
    expect((await first).statusCode).toBe(200);
  });

  it("ends an answer POST the marketplace never answers at the attempt timeout, and retries", async () => {
    let requests = 0;
    const server: Server = createServer((request, response) => {
      requests += 1;
      if (requests === 1) return; // the first POST stalls
      request.resume();
      request.on("end", () => response.writeHead(200).end("{}"));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const delivery = new ResponseDelivery({ allowPrivateAddresses: true, attemptTimeoutMs: 500 });
    cleanups.push(() => delivery.close());
    const { port } = server.address() as AddressInfo;
    const delivered = await underGcPressure(() =>
      delivery.deliver({
        url: `http://127.0.0.1:${port}/answers/1`,
        body: "{}",
        idempotencyKey: "1:assertion",
        expiresAt: Date.now() + 4_000,
        logger: pino({ level: "silent" }),
      }),
    );
    expect(delivered).toBe(true);
    expect(requests).toBe(2);
  });
});
