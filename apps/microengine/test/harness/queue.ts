import { eicarBytes } from "@engine/core";
import type { RunningEngine } from "../../src/commands/serve-engine.js";
import { signBody } from "../../src/protocol/webhook-signature.js";
import type { Collector } from "./engine.js";

/** The settings of a queue-mode test engine on `redisUrl` (serve and worker alike), with `extra`. */
export function queueSettings(
  redisUrl: string,
  secrets: { webhook: string; queue: string },
  queue: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    WEBHOOK_SECRET: secrets.webhook,
    PORT: "0",
    WORKER_PORT: "0",
    QUEUE_URL: redisUrl,
    QUEUE_NAME: queue,
    QUEUE_SECRET: secrets.queue,
    ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true", // the test marketplace answers on loopback
    ...extra,
  };
}

/** A signed bounty (an EICAR data: URI answering to `collector`), with its headers. */
export interface SignedBounty {
  id: number;
  body: string;
  headers: Record<string, string>;
}

/** Makes signed bounties with ids from `firstId`, for `collector`, under `webhookSecret`. */
export function signedBounties(collector: Collector, webhookSecret: string, firstId: number) {
  let nextId = firstId;
  return (overrides: Record<string, unknown> = {}, expiresInMs = 10_000): SignedBounty => {
    const id = nextId++;
    const body = JSON.stringify({
      id,
      artifact_type: "file",
      artifact_uri: `data:application/octet-stream;base64,${eicarBytes().toString("base64")}`,
      expiration: new Date(Date.now() + expiresInMs).toISOString(),
      response_url: `${collector.url}/answers/${id}`,
      ...overrides,
    });
    const headers = {
      "content-type": "application/json",
      "x-polyswarm-event": "bounty",
      "x-polyswarm-signature": signBody(webhookSecret, body),
    };
    return { id, body, headers };
  };
}

/** Posts a signed bounty to a running engine's webhook. */
export function postTo(engine: RunningEngine, { body, headers }: SignedBounty): Promise<Response> {
  return fetch(`${engine.url}/`, { method: "POST", body, headers });
}
