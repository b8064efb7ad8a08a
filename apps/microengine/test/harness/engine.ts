import { createServer as createHttpServer, type Server } from "node:http";
import { eicarBytes, type Scanner } from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import pino from "pino";
import { afterAll, beforeAll, expect, vi } from "vitest";
import type { EngineBackends } from "../../src/backends/build-backends.js";
import { loadConfig } from "../../src/config/config.js";
import { createServer } from "../../src/http/server.js";
import { BountyProcessor } from "../../src/intake/bounty-processor.js";
import { createMetrics } from "../../src/operations/metrics.js";
import { signBody } from "../../src/protocol/webhook-signature.js";

/** The shared secret of the test engines. */
export const secret = "test-secret";

/** One answer the marketplace's response_url received. */
export interface ReceivedAnswer {
  path: string;
  body: string;
  at: number;
}

/** A marketplace's response_url on loopback: records every POST. */
export interface Collector {
  url: string;
  answers: ReceivedAnswer[];
  answersFor(key: string | number): ReceivedAnswer[];
  close(): Promise<void>;
}

/** Starts a collector; `delayMs` holds each answer that long before it is accepted (a slow marketplace). */
export async function startCollector(options: { delayMs?: number } = {}): Promise<Collector> {
  const answers: ReceivedAnswer[] = [];
  const server: Server = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      answers.push({
        path: request.url ?? "",
        body: Buffer.concat(chunks).toString(),
        at: Date.now(),
      });
      setTimeout(() => response.writeHead(200).end("{}"), options.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    url,
    answers,
    answersFor: (key) => answers.filter((answer) => answer.path === `/answers/${key}`),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A collector started before the file's tests and closed after them. */
export function useCollector(options: { delayMs?: number } = {}): Collector {
  let started: Collector | undefined;
  beforeAll(async () => {
    started = await startCollector(options);
  });
  afterAll(async () => {
    await started?.close();
  });
  const current = (): Collector => {
    if (!started) throw new Error("the collector starts in beforeAll");
    return started;
  };
  return {
    get url() {
      return current().url;
    },
    get answers() {
      return current().answers;
    },
    answersFor: (key) => current().answersFor(key),
    close: async () => {},
  };
}

/** Waits for the one answer to `key` and returns it parsed, with its raw text and arrival time. */
export async function answerOf(collector: Collector, key: string | number, timeoutMs = 4000) {
  await vi.waitFor(() => expect(collector.answersFor(key)).toHaveLength(1), { timeout: timeoutMs });
  const answer = collector.answersFor(key)[0] as ReceivedAnswer;
  return { ...JSON.parse(answer.body), text: answer.body, at: answer.at } as {
    verdict: string;
    metadata: { comments?: string[]; [key: string]: unknown };
    text: string;
    at: number;
  };
}

/**
 * A test engine (webhook + scan API) over `scanners`, not listening (use `app.inject`, or
 * `app.listen` for real sockets). The collector on loopback is allowed explicitly.
 */
export async function engineWith(scanners: Scanner[], environment: Record<string, string> = {}) {
  const config = loadConfig({
    WEBHOOK_SECRET: secret,
    ANSWER_MARGIN_MS: "500",
    ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
    ...environment,
  });
  const logger = pino({ level: "silent" });
  const metrics = createMetrics();
  const scanner = createMultiScanner(scanners);
  const backends: EngineBackends = {
    scanner,
    multi: scanner,
    cache: "off",
    running: [],
    statuses: [],
    reload: async () => true,
    dispose: async () => {},
  };
  const processor = new BountyProcessor({ scanner, config, logger, metrics });
  const app = await createServer({
    config,
    backends,
    processor,
    metrics,
    logger,
  });
  await app.ready();
  return { app, metrics, processor, config };
}

let nextId = 1000;
/** A bounty body for an EICAR data: URI answering to `collector`, with `overrides`. */
export function bountyBody(
  collector: Collector,
  overrides: Record<string, unknown> = {},
  expiresInMs = 4000,
) {
  const id = nextId++;
  return {
    id,
    text: JSON.stringify({
      id,
      artifact_type: "file",
      artifact_uri: `data:application/octet-stream;base64,${eicarBytes().toString("base64")}`,
      expiration: new Date(Date.now() + expiresInMs).toISOString(),
      response_url: `${collector.url}/answers/${id}`,
      phase: "assertion",
      rules: { min_allowed_bid: 1000, max_allowed_bid: 5000 },
      ...overrides,
    }),
  };
}

/** Headers of a signed webhook. */
export const signed = (body: string | Buffer, event = "bounty", delivery?: string) => ({
  "content-type": "application/json",
  "x-polyswarm-event": event,
  "x-polyswarm-signature": signBody(secret, body),
  ...(delivery ? { "x-polyswarm-delivery": delivery } : {}),
});

/** Posts `body` to a test engine's webhook, signed (in process); `headers` override. */
export function postBounty(
  app: Pick<Awaited<ReturnType<typeof engineWith>>["app"], "inject">,
  body: string | Buffer,
  headers: Record<string, string> = {},
) {
  return app.inject({
    method: "POST",
    url: "/",
    payload: body,
    headers: { ...signed(body), ...headers },
  });
}
