import {
  type Artifact,
  artifactFromUrl,
  EngineError,
  type Scanner,
  type ScanResult,
  scannerEnvironment,
  scanResultForError,
} from "@engine/core";
import type { Logger } from "pino";
import { ArtifactFetcher, type FetchedArtifact } from "./artifact-fetcher.js";
import { computeBid, matchesFilter, stringifyWithBigInt } from "./bid.js";
import type { Bounty } from "./bounty.js";
import type { EngineConfig } from "./config.js";
import type { EngineMetrics } from "./metrics.js";
import { ReplayCache } from "./replay-cache.js";
import { deliverResponse } from "./response-delivery.js";
import { engineVersion } from "./version.js";

/** Records a finished scan in the metrics, per backend from the provenance. */
export function recordScan(metrics: EngineMetrics, result: ScanResult): void {
  for (const backend of result.metadata.backends ?? []) {
    metrics.scans.inc({ backend: backend.name, verdict: backend.verdict });
    metrics.scanDuration.observe({ backend: backend.name }, backend.duration_ms / 1000);
    if (backend.error_code)
      metrics.scanErrors.inc({ backend: backend.name, code: backend.error_code });
  }
}

/** Our engine's part of the metadata: engine version, environment, product. */
export function withEngineMetadata(result: ScanResult): ScanResult {
  return {
    ...result,
    metadata: {
      ...result.metadata,
      product: "engine-microengine",
      scanner: {
        ...result.metadata.scanner,
        version: engineVersion,
        environment: { ...scannerEnvironment() },
      },
    },
  };
}

/** The keys under which a bounty counts as seen: its id and phase, and the delivery id. */
export function replayKeys(bounty: Bounty, deliveryId?: string): Array<string | undefined> {
  return [`${bounty.id}:${bounty.phase}`, deliveryId ? `delivery:${deliveryId}` : undefined];
}

/** Where accepted bounties go: processed in this process, or queued for workers. */
export interface BountyIntake {
  /** Takes a bounty; `"duplicate"` when it (or this delivery) was seen before its expiration. */
  submit(bounty: Bounty, deliveryId?: string): Promise<"accepted" | "duplicate">;
  /** Bounties being handled here. */
  readonly inFlight: number;
  /** Stops taking work and finishes (or answers) what is in flight. */
  drain(): Promise<void>;
}

/**
 * Takes accepted bounties and always answers them before expiration: fetch the artifact,
 * scan it with a deadline of `expiration - ANSWER_MARGIN_MS`, and post the assertion (verdict,
 * integer bid, metadata) or the arbitration vote to `response_url`. Anything that goes wrong
 * (download, size, sha256, backend, timeout, shutdown) becomes an `unknown` answer with a
 * comment saying why, never silence.
 */
export class BountyProcessor implements BountyIntake {
  readonly #replays = new ReplayCache();
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #fetcher: ArtifactFetcher;

  constructor(
    private readonly options: {
      scanner: Scanner;
      config: EngineConfig;
      logger: Logger;
      metrics: EngineMetrics;
    },
  ) {
    const { config } = options;
    this.#fetcher = new ArtifactFetcher({
      allowedHosts: config.ARTIFACT_ALLOWED_HOSTS,
      allowPrivateAddresses: config.ARTIFACT_ALLOW_PRIVATE_ADDRESSES,
      allowFileUris: config.ARTIFACT_ALLOW_FILE_URIS,
      maxBytes: config.ARTIFACT_MAX_BYTES,
    });
  }

  /** Number of bounties being scanned or answered. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** Schedules a bounty; `"duplicate"` when this delivery or this bounty and phase was seen before. */
  async submit(bounty: Bounty, deliveryId?: string): Promise<"accepted" | "duplicate"> {
    if (!this.#replays.remember(replayKeys(bounty, deliveryId), bounty.expiresAt)) {
      this.options.metrics.bounties.inc({ phase: bounty.phase, outcome: "duplicate" });
      return "duplicate";
    }
    void this.run(bounty);
    return "accepted";
  }

  /** Handles one bounty (no replay check: queue workers get each bounty once). Resolves when answered. */
  run(bounty: Bounty): Promise<void> {
    const key = `${bounty.id}:${bounty.phase}`;
    const controller = new AbortController();
    const done = this.#process(bounty, controller.signal).finally(() => this.#running.delete(key));
    this.#running.set(key, { controller, done });
    return done;
  }

  /** Graceful shutdown: running scans stop now and are answered `unknown`; resolves when every answer went out. */
  async drain(): Promise<void> {
    for (const { controller } of this.#running.values())
      controller.abort(new Error("the engine is shutting down"));
    await Promise.allSettled([...this.#running.values()].map((entry) => entry.done));
    await this.#fetcher.close();
  }

  async #process(bounty: Bounty, shutdown: AbortSignal): Promise<void> {
    const { config, metrics, scanner } = this.options;
    const logger = this.options.logger.child({ bounty: bounty.id, phase: bounty.phase });
    const deadline = bounty.expiresAt - config.ANSWER_MARGIN_MS;
    metrics.inFlight.inc();
    let fetched: FetchedArtifact | undefined;
    let result: ScanResult;
    try {
      const rejectedBy = config.BOUNTY_REJECT.find((filter) => matchesFilter(filter, bounty));
      const unmatched = config.BOUNTY_ACCEPT.find((filter) => !matchesFilter(filter, bounty));
      if (rejectedBy || unmatched) {
        result = {
          verdict: "unknown",
          confidence: 0,
          metadata: {
            malware_family: "",
            comments: [
              `SKIPPED:FILTERED by ${rejectedBy ? `BOUNTY_REJECT ${rejectedBy}` : `BOUNTY_ACCEPT ${unmatched}`}`,
            ],
          },
        };
      } else {
        const signal = AbortSignal.any([
          shutdown,
          AbortSignal.timeout(Math.max(1, deadline - Date.now())),
        ]);
        fetched = await this.#fetcher.fetch(bounty.artifact_uri, {
          signal,
          expectedSha256: bounty.sha256 ?? null,
          mimetype: bounty.mimetype ?? null,
        });
        let artifact: Artifact = fetched.artifact;
        if (bounty.artifact_type === "url") {
          const text = Buffer.from(await fetched.artifact.bytes({ maxBytes: 64 * 1024 }))
            .toString("utf8")
            .trim();
          artifact = artifactFromUrl(text);
        }
        result = await scanner.scan(artifact, { deadline, signal: shutdown });
      }
    } catch (error) {
      if (!EngineError.isInstance(error))
        logger.error({ err: error }, "unexpected failure while handling a bounty");
      result = scanResultForError(
        shutdown.aborted
          ? new EngineError({ message: "the engine shut down before the scan finished" })
          : error,
      );
      logger.warn(
        {
          code: EngineError.isInstance(error) ? error.code : "ENGINE_ERROR",
          message: (error as Error)?.message,
        },
        "answering unknown",
      );
    } finally {
      await fetched?.dispose().catch(() => {});
      metrics.inFlight.dec();
    }
    result = withEngineMetadata(result);
    recordScan(metrics, result);

    const favor = config.BID_FAVOR.some((filter) => matchesFilter(filter, bounty));
    const penalize = config.BID_PENALIZE.some((filter) => matchesFilter(filter, bounty));
    const body =
      bounty.phase === "assertion"
        ? {
            verdict: result.verdict,
            bid: computeBid({
              verdict: result.verdict,
              confidence: result.confidence,
              strategy: config.BID_STRATEGY,
              min: bounty.rules?.min_allowed_bid,
              max: bounty.rules?.max_allowed_bid,
              favor,
              penalize,
            }),
            metadata: result.metadata,
          }
        : { verdict: result.verdict, metadata: result.metadata };
    const delivered = await deliverResponse({
      url: bounty.response_url,
      body: stringifyWithBigInt(body),
      idempotencyKey: `${bounty.id}:${bounty.phase}`,
      expiresAt: bounty.expiresAt,
      logger,
    });
    if (delivered && Date.now() <= bounty.expiresAt) {
      metrics.bounties.inc({ phase: bounty.phase, outcome: result.verdict });
      logger.info({ verdict: result.verdict, confidence: result.confidence }, "answered");
    } else if (delivered) {
      metrics.answeredLate.inc();
      logger.error("answered after expiration");
    } else {
      metrics.dropped.inc();
      logger.error("could not deliver the answer before expiration");
    }
  }
}
