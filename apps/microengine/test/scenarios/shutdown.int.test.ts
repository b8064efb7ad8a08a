import { createServer, type Server } from "node:http";
import { connect, type Socket } from "node:net";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { startEngine } from "../../src/commands/serve-engine.js";
import { loadConfig } from "../../src/config/config.js";
import { connectionGraceMs } from "../../src/http/draining-close.js";
import { answerOf, bountyBody, secret, signed, useCollector } from "../harness/engine.js";

// Second audit, item 7: SIGTERM was held by any client with a half-sent request (shutdown
// awaited server.close() before draining, and Node stops its header and request timeouts once
// close() runs), and the bounty in flight expired unanswered.
const collector = useCollector();
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("a shutdown no client can hold (second audit, item 7)", () => {
  it("answers the bounty in flight at once and exits within the grace period, while a client trickles a header", async () => {
    // An artifact server that never answers: the bounty is in flight when SIGTERM comes.
    const stalled: Server = createServer(() => {});
    await new Promise<void>((resolve) => stalled.listen(0, "127.0.0.1", resolve));
    cleanups.push(() => {
      stalled.closeAllConnections();
      stalled.close();
    });
    const engine = await startEngine(
      loadConfig({
        WEBHOOK_SECRET: secret,
        PORT: "0",
        ENGINE_BACKENDS: "eicar",
        ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
        ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
      }),
      pino({ level: "silent" }),
    );
    cleanups.push(() => engine.close());
    const { port } = new URL(engine.url);
    // A client sending one header line a second, for ever.
    const trickler: Socket = connect(Number(port), "127.0.0.1");
    trickler.on("error", () => {});
    const droppedByEngine = new Promise((resolve) => trickler.once("close", resolve));
    trickler.write("POST / HTTP/1.1\r\nHost: engine\r\n");
    const trickle = setInterval(() => trickler.write(`X-Slow-${Date.now()}: 1\r\n`), 1_000);
    cleanups.push(() => {
      clearInterval(trickle);
      trickler.destroy();
    });
    const { address } = stalled.address() as { address: string };
    const { id, text } = bountyBody(
      collector,
      { artifact_uri: `http://${address}:${(stalled.address() as { port: number }).port}/a.bin` },
      30_000,
    );
    const accepted = await fetch(`${engine.url}/`, {
      method: "POST",
      body: text,
      headers: signed(text),
    });
    expect(accepted.status).toBe(202);
    await new Promise((resolve) => setTimeout(resolve, 300)); // downloading
    const started = Date.now();
    const closed = engine.close();
    const answer = await answerOf(collector, id, 3_000);
    expect(answer.verdict).toBe("unknown");
    expect(answer.metadata.comments).toEqual([
      "ERROR:ABORTED",
      "the engine shut down before the scan finished",
    ]);
    expect(answer.at - started).toBeLessThan(2_000);
    await closed;
    expect(Date.now() - started).toBeLessThan(connectionGraceMs + 3_000);
    await droppedByEngine; // the engine closed the lingering connection
  }, 30_000);
});
