import { setTimeout as sleep } from "node:timers/promises";
import { createScanSignal } from "@engine/core";
import type { Logger } from "pino";
import { type Agent, request } from "undici";
import { loggableMessage } from "../operations/error-message.js";
import {
  type AddressPolicy,
  createGuardedAgent,
  isAllowedHost,
  literalAddressRefusal,
} from "./address-policy.js";

/** Where answers may be posted. */
export interface ResponsePolicy extends AddressPolicy {
  /** Longest wait for one POST of an answer, in ms. Default 5,000. */
  attemptTimeoutMs?: number;
  /** Hosts `response_url` may name (RESPONSE_ALLOWED_HOSTS); undefined: any public host. */
  allowedHosts?: readonly string[] | undefined;
}

/**
 * Why a `response_url` is refused before any request (a host outside RESPONSE_ALLOWED_HOSTS,
 * a private address literal), or undefined when it may be tried; names resolving to private
 * addresses are refused when connecting. Public: names no address.
 */
export function responseUrlRefusal(url: string, policy: ResponsePolicy): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "not a URL";
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return "not http(s)";
  const allowed = policy.allowedHosts;
  if (allowed && allowed.length > 0 && !isAllowedHost(parsed.hostname, allowed))
    return "the host is not in RESPONSE_ALLOWED_HOSTS";
  return literalAddressRefusal(parsed, policy);
}

/** Longest wait for one POST of an answer by default, in ms. */
const defaultAttemptTimeoutMs = 5_000;

/**
 * Posts answers to bounties' `response_url` through the same address policy as artifact
 * downloads (no private, loopback or link-local address, checked on the address actually
 * connected to, unless ARTIFACT_ALLOW_PRIVATE_ADDRESSES), and only to RESPONSE_ALLOWED_HOSTS
 * when that is set. One kept-alive agent for every answer.
 */
export class ResponseDelivery {
  readonly #policy: ResponsePolicy;
  readonly #agent: Agent;
  readonly #attemptTimeoutMs: number;

  constructor(policy: ResponsePolicy) {
    this.#policy = policy;
    this.#agent = createGuardedAgent(policy);
    this.#attemptTimeoutMs = policy.attemptTimeoutMs ?? defaultAttemptTimeoutMs;
  }

  /** See {@link responseUrlRefusal}. */
  refusal(url: string): string | undefined {
    return responseUrlRefusal(url, this.#policy);
  }

  /**
   * POSTs an answer, retrying with exponential backoff until it is accepted or the expiration
   * passes. The same body and `Idempotency-Key` go with every try, so a marketplace that got a
   * retry twice can tell. Resolves true when accepted in time; never rejects.
   */
  async deliver(options: {
    url: string;
    body: string;
    idempotencyKey: string;
    expiresAt: number;
    /** Stops retrying (a shutdown's grace period is over). */
    stop?: AbortSignal;
    logger: Logger;
  }): Promise<boolean> {
    const refusal = this.refusal(options.url);
    if (refusal) {
      options.logger.error({ reason: refusal }, "response_url refused: the answer was not sent");
      return false;
    }
    let delay = 100;
    for (let attempt = 1; Date.now() < options.expiresAt && !options.stop?.aborted; attempt += 1) {
      const remaining = options.expiresAt - Date.now();
      // A plain timer held for the attempt (a collected `AbortSignal.timeout` never fires, and
      // the POST would wait for undici's own 300 s); a shutdown's grace period ends it too.
      using attemptLimit = createScanSignal({
        signal: options.stop,
        deadline: Date.now() + Math.max(100, Math.min(remaining, this.#attemptTimeoutMs)),
        scanner: "microengine delivery",
      });
      try {
        const response = await request(options.url, {
          method: "POST",
          dispatcher: this.#agent,
          headers: {
            "content-type": "application/json",
            "idempotency-key": options.idempotencyKey,
          },
          body: options.body,
          signal: attemptLimit.signal,
        });
        await response.body.dump();
        if (response.statusCode >= 200 && response.statusCode < 300) return true;
        const retryable =
          response.statusCode >= 500 || response.statusCode === 408 || response.statusCode === 429;
        options.logger.warn(
          { status: response.statusCode, attempt },
          "response_url refused the answer",
        );
        if (!retryable) return false;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException)?.code;
        options.logger.warn(
          { attempt, code, error: loggableMessage(error) },
          "delivering the answer failed",
        );
        if (code === "EPRIVATEADDRESS") return false; // the policy will not change on a retry
      }
      const wait = Math.min(delay, options.expiresAt - Date.now() - 50);
      if (wait <= 0) break;
      // A shutdown's grace period ends the wait too.
      await sleep(wait, undefined, { signal: options.stop }).catch(() => {});
      delay = Math.min(delay * 2, 2_000);
    }
    return false;
  }

  /** Closes kept connections. */
  async close(): Promise<void> {
    await this.#agent.close().catch(() => {});
  }
}
