import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { EngineConfig } from "../config/config.js";
import type { BountyIntake, SubmitOutcome } from "../intake/bounty-intake.js";
import { BountyBodyError, parseBountyBody } from "../protocol/bounty.js";
import { verifySignature } from "../protocol/webhook-signature.js";
import { publicBody, refuseAndClose } from "./public-body.js";

/** Seconds a marketplace is told to wait before retrying when the engine is saturated. */
const retryAfterSeconds = 5;

/** The public reason of a signature that does not verify. */
const badSignature = "X-POLYSWARM-SIGNATURE does not match the body";

/** The settings the webhook reads. */
export type WebhookRoutesConfig = Pick<EngineConfig, "WEBHOOK_SECRET" | "WEBHOOK_MAX_BYTES">;

/** What the webhook needs. */
export interface WebhookRoutesOptions {
  config: WebhookRoutesConfig;
  /** Where accepted bounties go. */
  intake: Pick<BountyIntake, "submit" | "responseRefusal">;
}

/**
 * Refuses a webhook without a well-formed signature before its body is read (a request
 * without one costs nothing), closing the connection since the body is never read.
 */
async function refuseUnsigned(
  config: WebhookRoutesConfig,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  if (!config.WEBHOOK_SECRET) return;
  const signature = request.headers["x-polyswarm-signature"];
  if (typeof signature !== "string" || signature.length === 0)
    return refuseAndClose(reply, 400, "MISSING_SIGNATURE", "missing X-POLYSWARM-SIGNATURE");
  if (!/^[0-9a-fA-F]{64}$/.test(signature))
    return refuseAndClose(reply, 401, "BAD_SIGNATURE", badSignature);
}

/** The webhook's answer to what the intake did with a bounty: 202, or 503 with Retry-After. */
function answerOutcome(reply: FastifyReply, outcome: SubmitOutcome) {
  if (outcome === "overloaded" || outcome === "unavailable")
    return reply
      .code(503)
      .header("retry-after", String(retryAfterSeconds))
      .send(
        outcome === "overloaded"
          ? publicBody("OVERLOADED", "the engine is overloaded; retry later")
          : publicBody("QUEUE_UNAVAILABLE", "the bounty could not be queued; retry later"),
      );
  return reply
    .code(202)
    .send({ status: "ACCEPTED", ...(outcome === "duplicate" ? { duplicate: true } : {}) });
}

/**
 * A `bounty` event: parsed (400 naming the field), its `response_url` checked (400), then
 * handed to the intake with its delivery id.
 */
async function takeBounty(
  intake: WebhookRoutesOptions["intake"],
  request: FastifyRequest,
  reply: FastifyReply,
  body: Buffer,
) {
  let bounty: ReturnType<typeof parseBountyBody>;
  try {
    bounty = parseBountyBody(body);
  } catch (error) {
    if (error instanceof BountyBodyError)
      return reply.code(400).send(publicBody("BAD_BOUNTY", error.message));
    throw error;
  }
  const refusal = intake.responseRefusal(bounty.response_url);
  if (refusal) return reply.code(400).send(publicBody("BAD_BOUNTY", `response_url: ${refusal}`));
  const delivery = request.headers["x-polyswarm-delivery"];
  const outcome = await intake.submit(bounty, typeof delivery === "string" ? delivery : undefined);
  return answerOutcome(reply, outcome);
}

/** A webhook whose body has arrived: its signature verified (401), then its event answered. */
async function answerWebhook(
  options: WebhookRoutesOptions,
  request: FastifyRequest,
  reply: FastifyReply,
) {
  const { WEBHOOK_SECRET: secret } = options.config;
  const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  if (secret && !verifySignature(secret, body, String(request.headers["x-polyswarm-signature"])))
    return reply.code(401).send(publicBody("BAD_SIGNATURE", badSignature));
  const event = String(request.headers["x-polyswarm-event"] ?? "").toLowerCase();
  if (event === "ping") return reply.code(200).send({ status: "OK" });
  if (event !== "bounty")
    return reply
      .code(400)
      .send(
        publicBody(
          "UNKNOWN_EVENT",
          `unknown X-POLYSWARM-EVENT ${JSON.stringify(event.slice(0, 64))}`,
        ),
      );
  return takeBounty(options.intake, request, reply, body);
}

/**
 * The PolySwarm webhook as a Fastify plugin: `POST /` (signature checked before the body is
 * read, then over its exact bytes, bounded by WEBHOOK_MAX_BYTES; `ping` and `bounty` events)
 * and `GET /`, the webhook SDK's liveness check.
 */
export async function webhookRoutes(webhook: FastifyInstance, options: WebhookRoutesOptions) {
  // The webhook SDK's liveness check: a marketplace or load balancer may poll it.
  webhook.get("/", async () => ({ status: "OK" }));
  // The signature is over the exact bytes received: every content type arrives raw, bounded.
  webhook.removeAllContentTypeParsers();
  webhook.addContentTypeParser(
    "*",
    { parseAs: "buffer", bodyLimit: options.config.WEBHOOK_MAX_BYTES },
    (_request, body, done) => done(null, body),
  );
  webhook.post(
    "/",
    { onRequest: (request, reply) => refuseUnsigned(options.config, request, reply) },
    (request, reply) => answerWebhook(options, request, reply),
  );
}
