import { verdictSchema } from "@engine/core";
import { z } from "zod";
import {
  clamdConnectionOptionsSchema,
  hasOneEndpoint,
  oneEndpointMessage,
} from "./clamd-client-options.js";

/**
 * Options of `createClamavScanner`: where clamd is (see `clamdClientOptionsSchema`: `socket`
 * or `host`/`port`, timeouts, chunk size, `maxStreamBytes`, `maxConnections`) plus how
 * clamd's answers become verdicts.
 */
export const clamavScannerOptionsSchema = z
  .strictObject({
    /** Scanner name in results and logs. Default `"clamav"`. */
    name: z.string().min(1).default("clamav"),
    /** Connection options, passed to `ClamdClient`. */
    ...clamdConnectionOptionsSchema.shape,
    /**
     * Several clamd daemons instead of one (`socket`/`host`/`port`): `host:port`, `[v6]:port` or
     * unix socket paths. Scans go to the least busy healthy one, fail over on connection
     * errors, and a failed daemon is tried again after a backoff (see `ClamdPool`). The other
     * connection options apply to each (`maxConnections` per daemon).
     */
    hosts: z.array(z.string().min(1)).min(1).optional(),
    /** Confidence of a signature match (`FOUND`), 0..1. Default 1. */
    confidence: z.number().min(0).max(1).default(1),
    /**
     * Verdict for `Heuristics.*` detections (not `Heuristics.Limits.Exceeded.*` or
     * `Heuristics.Encrypted.*`, which are always `unknown`). Default `"suspicious"`: a heuristic
     * is a reason to look, not proof.
     */
    heuristicVerdict: verdictSchema.exclude(["benign"]).default("suspicious"),
    /** Confidence of a heuristic detection, 0..1. Default 0.5. */
    heuristicConfidence: z.number().min(0).max(1).default(0.5),
    /**
     * How long the cached `VERSION` (engine and database versions in the metadata) is trusted,
     * in ms; after that it is refreshed in the background, never on the scan's path.
     * `reload()` refreshes it at once. Default 60000.
     */
    versionMaxAgeMs: z.number().int().positive().default(60_000),
    /**
     * `signatures_version` to report when clamd's `VERSION` has no database version (custom
     * signatures only), e.g. a hash of your database files. Default: none.
     */
    signaturesVersion: z.string().min(1).optional(),
    /**
     * Trust a clean answer (`OK`) only from a clamd verified to raise its alerts
     * (`AlertEncrypted*`, `AlertExceedsMax`; see `checkClamdAlerts`) since its last new scan
     * connection: each daemon is probed once per generation (`ClamdClient.daemonGeneration`:
     * every new scan connection, so every restart, which may bring another clamd.conf) and at
     * least every `alertCheckMaxAgeMs`; a clean answer waits for that probe and is refused
     * (`BackendUnavailableError`) when the daemon fails it. Turn it on for a clamd you do not
     * configure yourself (one address per daemon: use `hosts` for several). Default false.
     */
    verifyAlerts: z.boolean().default(false),
    /** How long one probe of `verifyAlerts` stands within one generation, in ms. Default 300000. */
    alertCheckMaxAgeMs: z.number().int().positive().default(300_000),
  })
  .refine(hasOneEndpoint, { message: oneEndpointMessage })
  .refine((options) => !(options.hosts && (options.socket || options.host || options.port)), {
    message: "give hosts, or socket or host/port, not both",
  });

/** Options of `createClamavScanner`; see {@link clamavScannerOptionsSchema}. */
export type ClamavScannerOptions = z.input<typeof clamavScannerOptionsSchema>;
