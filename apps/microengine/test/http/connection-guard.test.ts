import { Agent, createServer, request, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import { createEicarScanner, defineScanner, type Scanner } from "@engine/core";
import { afterEach, describe, expect, it, vi } from "vitest";
import { guardConnections } from "../../src/http/connection-guard.js";
import { createMetrics } from "../../src/operations/metrics.js";
import { answerOf, bountyBody, engineWith, signed, useCollector } from "../harness/engine.js";

const collector = useCollector();
const cap = 32;

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A test engine with HTTP_MAX_CONNECTIONS `cap`, listening on loopback; closed after the test. */
async function listeningEngine(
  scanners = [createEicarScanner()],
  environment: Record<string, string> = {},
) {
  const engine = await engineWith(scanners, { HTTP_MAX_CONNECTIONS: String(cap), ...environment });
  cleanups.push(
    () => engine.app.close(),
    () => engine.app.server.closeAllConnections(),
  );
  await engine.app.listen({ port: 0, host: "127.0.0.1" });
  return { ...engine, port: (engine.app.server.address() as { port: number }).port };
}

/** Open sockets of the engine, as its server counts them. */
function openConnections(engine: { app: { server: Server } }) {
  return new Promise<number>((resolve, reject) =>
    engine.app.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

/** The value of a counter of the engine's metrics, summed over the labels matching `labels`. */
async function counted(
  counter: { get(): Promise<{ values: Array<{ value: number; labels: object }> }> },
  labels: Record<string, string> = {},
) {
  const { values } = await counter.get();
  return values
    .filter((value) =>
      Object.entries(labels).every(([key, label]) => (value.labels as never)[key] === label),
    )
    .reduce((sum, value) => sum + value.value, 0);
}

/** A scanner whose scans read the artifact, then wait until `release()`; `started` counts them. */
function heldScanner() {
  let release = () => {};
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const held = { started: 0, release: () => release() };
  const scanner: Scanner = defineScanner({
    name: "held",
    scan: async (artifact) => {
      await artifact.bytes();
      held.started += 1;
      await gate;
      return { verdict: "benign" as const, confidence: 1, metadata: { malware_family: "" } };
    },
  });
  return { scanner, held };
}

/**
 * An attacker's sockets: `count` connections opened one after the other; each sends `prefix`
 * at once (nothing when empty) and then one more header byte every `trickleMs` (never when 0).
 */
async function flood(port: number, count: number, prefix = "", trickleMs = 0) {
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  cleanups.push(() => {
    for (const timer of timers) clearInterval(timer);
    for (const socket of sockets) socket.destroy();
  });
  for (let index = 0; index < count; index += 1) {
    const socket = connect(port, "127.0.0.1");
    socket.on("error", () => {});
    sockets.push(socket);
    await new Promise((resolve) => {
      socket.once("connect", resolve);
      socket.once("close", resolve);
    });
    if (prefix) socket.write(prefix);
    if (trickleMs > 0)
      timers.push(
        setInterval(() => {
          if (!socket.destroyed) socket.write("a");
        }, trickleMs),
      );
  }
  return sockets;
}

/** What a client got for one request on a connection of its own: a status, or an error. */
interface Outcome {
  status?: number;
  text?: string;
  error?: string;
}

/** POSTs `body` to `path` on a new connection (no keep-alive), as a marketplace would. */
function postOnNewConnection(
  port: number,
  path: string,
  body: string | Buffer,
  headers: Record<string, string>,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const outgoing = request(
      {
        host: "127.0.0.1",
        port,
        path,
        method: "POST",
        agent: new Agent({ keepAlive: false }),
        headers: { ...headers, "content-length": String(Buffer.byteLength(body)) },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () =>
          resolve({ status: response.statusCode, text: Buffer.concat(chunks).toString() }),
        );
        response.on("error", (error) => resolve({ error: error.message }));
      },
    );
    outgoing.on("error", (error) => resolve({ error: (error as NodeJS.ErrnoException).code }));
    outgoing.end(body);
  });
}

/** Posts a signed EICAR bounty on a new connection and expects 202, then its answer. */
async function bountyGetsThrough(port: number) {
  const { id, text } = bountyBody(collector, {}, 4000);
  const outcome = await postOnNewConnection(port, "/", text, signed(text));
  expect(outcome).toMatchObject({ status: 202 });
  expect((await answerOf(collector, id, 4000)).verdict).toBe("malicious");
}

/** A plain HTTP server guarded by {@link guardConnections}, listening on loopback. */
async function guardedServer(maxConnections: number, body: string | Buffer = "ok") {
  const server = createServer((_request, response) => response.end(body));
  const metrics = createMetrics();
  const warn = vi.fn();
  guardConnections(server, { maxConnections, metrics, logger: { warn } });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () => new Promise((resolve) => server.close(resolve)),
    () => server.closeAllConnections(),
  );
  return { port: (server.address() as { port: number }).port, metrics, warn };
}

/** A partial webhook request: the head is never finished (a slowloris). */
const unfinishedHead = "POST / HTTP/1.1\r\nHost: engine\r\nX-Slow: ";
/** A raw /scan request of a harmless file, complete. */
const harmless = "just text, nothing to see\n";
const scanHeaders = { "content-type": "application/octet-stream" };

describe("a flood of sockets cannot lock the marketplace out (audit finding 11)", () => {
  it("answers a signed bounty on a new connection while more than the cap of silent sockets is open", async () => {
    const engine = await listeningEngine();
    await flood(engine.port, cap + cap / 2);
    await vi.waitFor(async () => expect(await openConnections(engine)).toBe(cap));
    await bountyGetsThrough(engine.port);
    expect(await openConnections(engine)).toBeLessThanOrEqual(cap);
  });

  it("answers a signed bounty while slowloris sockets trickle a header byte every second and more keep coming", async () => {
    const engine = await listeningEngine();
    await flood(engine.port, cap + cap / 2, unfinishedHead, 1000);
    // Past the grace of new connections: the slow ones are ranked by their byte rate.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Meanwhile the attacker keeps opening connections.
    let churning = true;
    const churn = (async () => {
      while (churning) {
        await flood(engine.port, 1, unfinishedHead, 1000);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    cleanups.push(async () => {
      churning = false;
      await churn;
    });
    await bountyGetsThrough(engine.port);
    await bountyGetsThrough(engine.port);
    churning = false;
    await churn;
    expect(await openConnections(engine)).toBeLessThanOrEqual(cap);
  });

  it("never evicts a connection whose request has arrived: a running /scan gets its 200 and a webhook being accepted its 202", async () => {
    const { scanner, held } = heldScanner();
    const engine = await listeningEngine([scanner]);
    const scan = postOnNewConnection(engine.port, "/scan", harmless, scanHeaders);
    await vi.waitFor(() => expect(held.started).toBe(1));
    // A webhook whose body has fully arrived, still being handled (its intake is slow).
    let admit = () => {};
    const admitted = new Promise<void>((resolve) => {
      admit = resolve;
    });
    const submit = engine.processor.submit.bind(engine.processor);
    const intake = vi.spyOn(engine.processor, "submit").mockImplementation(async (...args) => {
      await admitted;
      return submit(...args);
    });
    const { id, text } = bountyBody(collector, {}, 4000);
    const webhook = postOnNewConnection(engine.port, "/", text, signed(text));
    await vi.waitFor(() => expect(intake).toHaveBeenCalledTimes(1));
    // Then three times the cap of silent and slowloris sockets, the two requests the oldest.
    await flood(engine.port, cap);
    await flood(engine.port, cap, unfinishedHead, 1000);
    await flood(engine.port, cap);
    await vi.waitFor(async () =>
      expect(await counted(engine.metrics.httpConnectionsEvicted)).toBeGreaterThanOrEqual(2 * cap),
    );
    admit();
    held.release();
    expect(await webhook).toMatchObject({ status: 202 });
    const scanned = await scan;
    expect(scanned).toMatchObject({ status: 200 });
    expect(JSON.parse(scanned.text ?? "{}").verdict).toBe("benign");
    expect((await answerOf(collector, id, 4000)).verdict).toBe("benign");
    expect(await counted(engine.metrics.httpConnectionsRefused)).toBe(0);
  });

  it("evicts idle keep-alive connections first, the longest idle first, then the slowest senders", async () => {
    const engine = await listeningEngine(undefined, { HTTP_MAX_CONNECTIONS: "5" });
    const closed: string[] = [];
    const named = (name: string, socket: Socket) => {
      socket.once("close", () => closed.push(name));
      return socket;
    };
    for (const name of ["idle-1", "idle-2"]) {
      const [socket] = await flood(engine.port, 1, "GET /healthz HTTP/1.1\r\nHost: engine\r\n\r\n");
      await new Promise((resolve) => (socket as Socket).once("data", resolve));
      named(name, socket as Socket);
    }
    // A webhook upload under way, fast (20 kB sent of 100 kB), a slowloris, a silent socket.
    const fastHead = `POST / HTTP/1.1\r\nHost: engine\r\nContent-Type: application/json\r\nX-Polyswarm-Event: bounty\r\nX-Polyswarm-Signature: ${"0".repeat(64)}\r\nContent-Length: 100000\r\n\r\n`;
    named(
      "fast",
      ((await flood(engine.port, 1, fastHead + " ".repeat(20_000))) as Socket[])[0] as Socket,
    );
    named("slowloris", (await flood(engine.port, 1, unfinishedHead, 200))[0] as Socket);
    named("silent", (await flood(engine.port, 1))[0] as Socket);
    // Past the grace of new connections, then one new connection at a time.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const order = ["idle-1", "idle-2", "silent", "slowloris", "fast"];
    for (let index = 1; index <= order.length; index += 1) {
      await flood(engine.port, 1);
      await vi.waitFor(() => expect(closed).toEqual(order.slice(0, index)));
    }
    expect(await counted(engine.metrics.httpConnectionsEvicted, { reason: "idle" })).toBe(2);
    expect(await counted(engine.metrics.httpConnectionsEvicted, { reason: "slow" })).toBe(3);
    expect(await openConnections(engine)).toBe(5);
  });

  it("refuses a new connection only when every open one is handling a request, and finishes those", async () => {
    const { scanner, held } = heldScanner();
    const engine = await listeningEngine([scanner], { HTTP_MAX_CONNECTIONS: "2" });
    const scans = [
      postOnNewConnection(engine.port, "/scan", harmless, scanHeaders),
      postOnNewConnection(engine.port, "/scan", harmless, scanHeaders),
    ];
    await vi.waitFor(() => expect(held.started).toBe(2));
    const refused = await postOnNewConnection(engine.port, "/scan", harmless, scanHeaders);
    expect(refused.status).toBeUndefined();
    held.release();
    for (const scan of scans) expect(await scan).toMatchObject({ status: 200 });
    expect(await counted(engine.metrics.httpConnectionsRefused)).toBe(1);
    expect(await counted(engine.metrics.httpConnectionsEvicted)).toBe(0);
  });

  it("keeps a connection opened within the grace, even silent, over an older slowloris", async () => {
    const { port, metrics } = await guardedServer(2);
    const [slowloris] = await flood(port, 1, unfinishedHead, 200);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // The marketplace connected and has not sent its request yet: a byte rate of 0.
    const [marketplace] = await flood(port, 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await flood(port, 1);
    await vi.waitFor(() => expect(slowloris?.destroyed).toBe(true));
    expect(marketplace?.destroyed).toBe(false);
    expect(await counted(metrics.httpConnectionsEvicted, { reason: "slow" })).toBe(1);
  });

  it("evicts a client that does not read its answer: the answer was given, the engine holds nothing for it", async () => {
    const { port, metrics } = await guardedServer(1, Buffer.alloc(32 * 1024 * 1024));
    const [reader] = await flood(port, 1, "GET / HTTP/1.1\r\nHost: engine\r\n\r\n");
    reader?.pause();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const [next] = await flood(port, 1);
    // The paused client does not see its end; the server's counts do.
    await vi.waitFor(async () =>
      expect(await counted(metrics.httpConnectionsEvicted, { reason: "slow" })).toBe(1),
    );
    expect(await counted(metrics.httpConnectionsRefused)).toBe(0);
    expect(next?.destroyed).toBe(false);
  });

  it("warns once at the cap, not once per socket of a flood", async () => {
    const { port, metrics, warn } = await guardedServer(4);
    await flood(port, 40);
    await vi.waitFor(async () =>
      expect(await counted(metrics.httpConnectionsEvicted, { reason: "slow" })).toBe(36),
    );
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[1]).toMatch(/HTTP_MAX_CONNECTIONS \(4\) reached/);
  });
});
