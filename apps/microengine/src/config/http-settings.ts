import { z } from "zod";
import { booleanText, integer } from "./setting-values.js";

/** The HTTP server: where it listens, the webhook's secret and bounds, the scan API. */
export const httpSettings = z.object({
  /** HTTP port. Default 8080. */
  PORT: integer(0, 65535).default(8080),
  /** Address to listen on. Default 127.0.0.1 (loopback only). */
  HOST: z.string().min(1).default("127.0.0.1"),
  /** Shared secret for X-POLYSWARM-SIGNATURE (HMAC-SHA256 of the raw body). Required unless INSECURE_NO_WEBHOOK_SECRET. */
  WEBHOOK_SECRET: z.string().min(1).optional(),
  /** Run without webhook signatures (warned at every start). Default false. */
  INSECURE_NO_WEBHOOK_SECRET: booleanText.default(false),
  /**
   * Largest webhook body, in bytes, refused with 413 before it is parsed or its signature
   * checked. A `data:` artifact travels inside the body and counts (base64 adds a third).
   * Default 1 MiB.
   */
  WEBHOOK_MAX_BYTES: integer(1024, 256 * 1024 * 1024).default(1024 * 1024),
  /**
   * Open HTTP connections at most. At the cap a new connection makes room: an idle keep-alive
   * connection is closed, else the slowest one still sending its request; one whose request has
   * arrived and is being handled never is, and the new one is refused only when every open one
   * is such (see connection-guard.ts). Default 1024.
   */
  HTTP_MAX_CONNECTIONS: integer(1, 1_000_000).default(1024),
  /**
   * Bearer token for POST /scan. Default: none, and then the scan API answers only when HOST is
   * loopback (an open scan API on a public address would let anyone use the backends).
   */
  SCAN_API_TOKEN: z.string().min(1).optional(),
  /** Scans the scan API runs at once (its own slots: uploads never take the bounties'). Default 4. */
  SCAN_API_CONCURRENCY: integer(1, 4096).default(4),
  /** Scan API requests that may wait for a slot; past it, 503 with Retry-After. Default 64. */
  SCAN_API_BACKLOG: integer(0, 1_000_000).default(64),
});
