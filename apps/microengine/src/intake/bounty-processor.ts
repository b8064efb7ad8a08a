import {
  type Artifact,
  artifactFromUrl,
  createScanSignal,
  EngineError,
  OverloadedError,
  publicError,
  ScanAbortedError,
  type Scanner,
  type ScanResult,
  scanResultForError,
} from "@engine/core";
import type { Span } from "@opentelemetry/api";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import { ArtifactFetcher, type FetchedArtifact } from "../net/artifact-fetcher.js";
import { ResponseDelivery } from "../net/response-delivery.js";
import { loggableMessage } from "../operations/error-message.js";
import { type EngineMetrics, recordScan } from "../operations/metrics.js";
import { inSpan } from "../operations/tracing.js";
import type { Bounty } from "../protocol/bounty.js";
import { matchesFilter } from "../protocol/bounty-filter.js";
import { withEngineMetadata } from "../protocol/engine-metadata.js";
import type { AnswerLedger } from "../queue/answer-ledger.js";
import { type Admission, BacklogAdmission, WaitingAdmission } from "./admission.js";
import { AnswerPoster, type AnswerPosting } from "./answer-poster.js";
import type { AnswerTarget } from "./answer-target.js";
import type { BountyIntake, IntakeLoad, SubmitOutcome } from "./bounty-intake.js";
import { BountySlots } from "./bounty-slots.js";
import { ReplayCache } from "./replay-cache.js";

export type { AnswerTarget } from "./answer-target.js";

/** The keys under which a bounty counts as seen: its id and phase, and the delivery id. */
export function replayKeys(bounty: Bounty, deliveryId?: string): Array<string | undefined> {
  return [`${bounty.id}:${bounty.phase}`, deliveryId ? `delivery:${deliveryId}` : undefined];
}

/** The settings a {@link BountyProcessor} reads: downloads, answers, bounds, filters and bids. */
export type BountyProcessorConfig = Pick<
  EngineConfig,
  | "ARTIFACT_ALLOW_PRIVATE_ADDRESSES"
  | "ARTIFACT_ALLOWED_HOSTS"
  | "ARTIFACT_ALLOW_FILE_URIS"
  | "ARTIFACT_MAX_BYTES"
  | "RESPONSE_ALLOWED_HOSTS"
  | "ANSWER_MARGIN_MS"
  | "BOUNTY_CONCURRENCY"
  | "BOUNTY_BACKLOG"
  | "BOUNTY_BACKLOG_BYTES"
  | "BOUNTY_ACCEPT"
  | "BOUNTY_REJECT"
  | "BID_STRATEGY"
  | "BID_FAVOR"
  | "BID_PENALIZE"
>;

/** Longest a shutdown waits for answers still being retried, in ms. */
const shutdownGraceMs = 30_000;

/**
 * Thrown by `run()` when a queue worker's shutdown hands its bounty back unanswered (another
 * worker has time to scan it): the queue retries the job.
 */
export class HandedBack extends Error {
  constructor() {
    super("handed back to the queue at shutdown");
    this.name = "HandedBack";
  }
}

/** Hands the bounty over and forgets it. */
function takeBounty(holder: { bounty?: Bounty }): Bounty {
  const { bounty } = holder;
  holder.bounty = undefined;
  if (!bounty) throw new Error("@engine/microengine: a bounty was taken twice");
  return bounty;
}

/** The answer of a bounty the engine did not scan (filtered, overloaded). */
function skipped(comment: string): ScanResult {
  return {
    verdict: "unknown",
    confidence: 0,
    metadata: { malware_family: "", comments: [comment] },
  };
}

/** The `SKIPPED:FILTERED` answer of a bounty BOUNTY_REJECT or BOUNTY_ACCEPT turns away; undefined when it is scanned. */
function filteredOut(
  bounty: Bounty,
  config: Pick<EngineConfig, "BOUNTY_REJECT" | "BOUNTY_ACCEPT">,
): ScanResult | undefined {
  const rejectedBy = config.BOUNTY_REJECT.find((filter) => matchesFilter(filter, bounty));
  const unmatched = config.BOUNTY_ACCEPT.find((filter) => !matchesFilter(filter, bounty));
  if (!rejectedBy && !unmatched) return undefined;
  return skipped(
    `SKIPPED:FILTERED by ${rejectedBy ? `BOUNTY_REJECT ${rejectedBy}` : `BOUNTY_ACCEPT ${unmatched}`}`,
  );
}

/** What answering `bounty` needs, with BID_FAVOR and BID_PENALIZE applied to it. */
function answerTarget(
  bounty: Bounty,
  config: Pick<EngineConfig, "BID_FAVOR" | "BID_PENALIZE">,
): AnswerTarget {
  return {
    id: bounty.id,
    phase: bounty.phase,
    response_url: bounty.response_url,
    expiresAt: bounty.expiresAt,
    rules: bounty.rules,
    favor: config.BID_FAVOR.some((filter) => matchesFilter(filter, bounty)),
    penalize: config.BID_PENALIZE.some((filter) => matchesFilter(filter, bounty)),
  };
}

/** Why a bounty cut short by a shutdown is answered unknown (`ERROR:ABORTED`, saying so). */
function shutDownError(): ScanAbortedError {
  return new ScanAbortedError({
    message: "@engine/microengine: the engine shut down before the scan finished",
    publicMessage: "the engine shut down before the scan finished",
  });
}

/**
 * Takes accepted bounties and always answers them before expiration: fetch the artifact,
 * scan it with a deadline of `expiration - ANSWER_MARGIN_MS`, and post the assertion (verdict,
 * integer bid, metadata) or the arbitration vote to `response_url`. Anything that goes wrong
 * (download, size, sha256, backend, timeout, shutdown, a bug) becomes an `unknown` answer with
 * a code and a public reason, never silence and never a crash: each bounty runs inside one
 * error boundary.
 *
 * Work is bounded: at most BOUNTY_CONCURRENCY bounties download or scan at once, at most
 * BOUNTY_BACKLOG (and BOUNTY_BACKLOG_BYTES) wait. A bounty that finds the backlog full, whose
 * deadline passes while it waits, or that would not be reached in time (judged by the median
 * download + scan time of the last 64 bounties) is answered `unknown` with `SKIPPED:OVERLOADED`
 * at once, instead of holding a slot until it times out ({@link BacklogAdmission}). When
 * the answers still to post pass BOUNTY_CONCURRENCY + 2 x BOUNTY_BACKLOG, `submit` says
 * `"overloaded"` (the webhook answers 503 and the marketplace retries). Answers go out through
 * {@link AnswerPoster}.
 */
export class BountyProcessor implements BountyIntake {
  readonly #replays = new ReplayCache();
  readonly #running = new Map<
    number,
    { controller: AbortController; done: Promise<void>; expiresAt: number }
  >();
  #nextKey = 0;
  readonly #fetcher: ArtifactFetcher;
  readonly #delivery: ResponseDelivery;
  readonly #slots: BountySlots;
  /** A webhook's bounties wait in the bounded backlog; a queue job's wait for a slot. */
  readonly #backlog: Admission;
  readonly #waiting: Admission;
  readonly #poster: AnswerPosting;
  readonly #maximumOpen: number;
  #draining = false;
  /** Set when the engine shuts down: answers stop retrying then. */
  readonly #shutdown = new AbortController();

  constructor(
    private readonly options: {
      scanner: Scanner;
      config: BountyProcessorConfig;
      logger: Logger;
      metrics: EngineMetrics;
      /** Records answers around their POST (queue mode): each bounty answered once, one verdict. */
      ledger?: AnswerLedger;
    },
  ) {
    const { config, metrics } = options;
    const addresses = { allowPrivateAddresses: config.ARTIFACT_ALLOW_PRIVATE_ADDRESSES };
    this.#fetcher = new ArtifactFetcher({
      ...addresses,
      allowedHosts: config.ARTIFACT_ALLOWED_HOSTS,
      allowFileUris: config.ARTIFACT_ALLOW_FILE_URIS,
      maxBytes: config.ARTIFACT_MAX_BYTES,
    });
    this.#delivery = new ResponseDelivery({
      ...addresses,
      allowedHosts: config.RESPONSE_ALLOWED_HOSTS,
    });
    this.#slots = new BountySlots(config, metrics);
    this.#backlog = new BacklogAdmission(this.#slots, config);
    this.#waiting = new WaitingAdmission(this.#slots);
    this.#poster = new AnswerPoster({
      config,
      metrics,
      ledger: options.ledger,
      delivery: this.#delivery,
      stop: this.#shutdown.signal,
    });
    this.#maximumOpen = config.BOUNTY_CONCURRENCY + 2 * config.BOUNTY_BACKLOG;
  }

  /** Number of accepted bounties not answered yet. */
  get inFlight(): number {
    return this.#running.size;
  }

  load(): IntakeLoad {
    const { config } = this.options;
    const open = this.#running.size;
    return {
      running: this.#slots.running,
      concurrency: this.#slots.concurrency,
      waiting: this.#slots.waiting,
      backlog: config.BOUNTY_BACKLOG,
      open,
      saturated:
        (this.#slots.running >= this.#slots.concurrency &&
          this.#slots.waiting >= config.BOUNTY_BACKLOG) ||
        open >= this.#maximumOpen,
    };
  }

  responseRefusal(url: string): string | undefined {
    return this.#delivery.refusal(url);
  }

  async submit(bounty: Bounty, deliveryId?: string): Promise<SubmitOutcome> {
    if (this.#running.size >= this.#maximumOpen || this.#draining) {
      this.options.metrics.overloaded.inc({ action: "refused_503" });
      return "overloaded";
    }
    if (!this.#replays.remember(replayKeys(bounty, deliveryId), bounty.expiresAt)) {
      this.options.metrics.bounties.inc({ phase: bounty.phase, outcome: "duplicate" });
      return "duplicate";
    }
    void this.#track(bounty, this.#backlog);
    return "accepted";
  }

  /**
   * Handles one bounty (no replay check or backlog: queue workers bound their own intake).
   * Resolves when answered; rejects with `HandedBack` when a shutdown handed it back.
   */
  run(bounty: Bounty): Promise<void> {
    return this.#track(bounty, this.#waiting);
  }

  /**
   * Answers a bounty `unknown` for `error` without scanning it (a queue's deadline watcher, a
   * job that failed for good), unless it was answered already. Never throws.
   */
  answerUnknown(
    target: Omit<AnswerTarget, "favor" | "penalize">,
    error: unknown,
    options: {
      /** `skip`: post without the answer ledger (Redis is away; a duplicate beats a loss). Default `use`. */
      ledger?: "use" | "skip";
    } = {},
  ): Promise<void> {
    // Tracked like a bounty: a drain waits for it before closing the connections it uses.
    const key = this.#nextKey++;
    const done = this.#postUnknown(target, error, options.ledger ?? "use")
      .catch(() => {})
      .finally(() => this.#running.delete(key));
    this.#running.set(key, { controller: new AbortController(), done, expiresAt: 0 });
    return done;
  }

  async #postUnknown(
    target: Omit<AnswerTarget, "favor" | "penalize">,
    error: unknown,
    ledger: "use" | "skip",
  ): Promise<void> {
    const logger = this.options.logger.child({ bounty: target.id, phase: target.phase });
    logger.warn(
      {
        code: publicError(error).code,
        message: loggableMessage(error),
      },
      "answering unknown",
    );
    await this.#poster.post(
      { ...target, favor: false, penalize: false },
      withEngineMetadata(scanResultForError(error)),
      logger,
      ledger,
    );
  }

  /** Graceful shutdown: running and waiting scans stop now and are answered `unknown`; resolves when every answer went out. */
  async drain(options: { handBackWhenLeftMs?: number } = {}): Promise<void> {
    this.#draining = true;
    for (const { controller, expiresAt } of this.#running.values()) {
      // A queue worker hands back what another worker still has time to scan, unanswered.
      const handBack =
        options.handBackWhenLeftMs !== undefined &&
        expiresAt - Date.now() > options.handBackWhenLeftMs;
      controller.abort(handBack ? new HandedBack() : shutDownError());
    }
    // Answers are retried until their expiration, but a shutdown waits 30 s at most.
    const grace = setTimeout(
      () => this.#shutdown.abort(new Error("shutdown grace period over")),
      shutdownGraceMs,
    );
    try {
      await Promise.allSettled([...this.#running.values()].map((entry) => entry.done));
    } finally {
      clearTimeout(grace);
    }
    await Promise.allSettled([this.#fetcher.close(), this.#delivery.close()]);
  }

  #track(bounty: Bounty, admission: Admission): Promise<void> {
    const key = this.#nextKey++;
    const controller = new AbortController();
    const logger = this.options.logger.child({ bounty: bounty.id, phase: bounty.phase });
    const target = answerTarget(bounty, this.options.config);
    // The bounty itself (a data: URI may hold a megabyte) is let go once it is scanned.
    const done = this.#handle({ bounty }, target, admission, controller.signal, logger)
      .catch((error: unknown) => {
        if (error instanceof HandedBack && admission.handsBack) throw error; // the queue worker retries it
        // The boundary below answers every failure; this only guards against a bug in it.
        logger.error({ err: error }, "unexpected failure outside the bounty's error boundary");
        this.options.metrics.dropped.inc();
      })
      .finally(() => this.#running.delete(key));
    this.#running.set(key, { controller, done, expiresAt: bounty.expiresAt });
    return done;
  }

  /** The error boundary of one bounty: whatever happens, one answer goes out. */
  async #handle(
    holder: { bounty?: Bounty },
    target: AnswerTarget,
    admission: Admission,
    shutdown: AbortSignal,
    logger: Logger,
  ): Promise<void> {
    const attributes = { "engine.bounty.id": target.id, "engine.bounty.phase": target.phase };
    return inSpan("bounty", attributes, (span) =>
      this.#handleInSpan(holder, target, admission, shutdown, logger, span),
    );
  }

  async #handleInSpan(
    holder: { bounty?: Bounty },
    target: AnswerTarget,
    admission: Admission,
    shutdown: AbortSignal,
    logger: Logger,
    span: Span,
  ): Promise<void> {
    let result: ScanResult;
    try {
      // Only #scanBounty's frame holds the bounty: once it returns, nothing here keeps it.
      result = await this.#scanBounty(takeBounty(holder), admission, shutdown, logger);
    } catch (error) {
      if (shutdown.reason instanceof HandedBack) {
        logger.info("handed back to the queue at shutdown, unanswered");
        throw shutdown.reason;
      }
      result = this.#failed(error, shutdown, logger);
    }
    span.setAttribute("engine.verdict", result.verdict);
    if (result.metadata.malware_family)
      span.setAttribute("engine.malware_family", result.metadata.malware_family);
    await this.#poster.post(target, withEngineMetadata(result), logger);
  }

  /** The `unknown` answer of a bounty whose scan failed (logged, and counted when overloaded). */
  #failed(error: unknown, shutdown: AbortSignal, logger: Logger): ScanResult {
    const cause = shutdown.aborted ? shutDownError() : error;
    if (!EngineError.isInstance(error))
      logger.error({ err: error }, "unexpected failure while handling a bounty");
    if (OverloadedError.isInstance(cause))
      this.options.metrics.overloaded.inc({ action: "answered_unknown" });
    logger.warn(
      {
        code: EngineError.isInstance(cause) ? cause.code : "ENGINE_ERROR",
        message: loggableMessage(cause),
      },
      "answering unknown",
    );
    return scanResultForError(cause);
  }

  /** Filters, a slot (as `admission` gives it), the download, the scan. */
  async #scanBounty(
    bounty: Bounty,
    admission: Admission,
    shutdown: AbortSignal,
    logger: Logger,
  ): Promise<ScanResult> {
    const { config, metrics } = this.options;
    const filtered = filteredOut(bounty, config);
    if (filtered) return filtered;
    const deadline = bounty.expiresAt - config.ANSWER_MARGIN_MS;
    await admission.admit(bounty, deadline, shutdown);
    this.#slots.updateGauges();
    let fetched: FetchedArtifact | undefined;
    metrics.inFlight.inc();
    const started = performance.now();
    try {
      // A plain timer, held until the download ends: `AbortSignal.any` over an
      // `AbortSignal.timeout` lets Node 20 collect the timeout before it fires
      // (nodejs/node#57736), and a stalled server then holds the slot for minutes.
      using downloadLimit = createScanSignal({
        signal: shutdown,
        deadline,
        scanner: "microengine download",
      });
      fetched = await this.#download(bounty, downloadLimit.signal);
      const result = await this.#scan(bounty, fetched, deadline, shutdown);
      recordScan(metrics, result);
      return result;
    } finally {
      const serviceMs = performance.now() - started;
      metrics.inFlight.dec();
      this.#slots.release(serviceMs);
      await fetched?.dispose().catch((error: unknown) => {
        logger.warn({ err: error }, "could not remove a downloaded artifact");
      });
    }
  }

  /** Downloads the bounty's artifact (checked against its sha256) until `signal` fires. */
  #download(bounty: Bounty, signal: AbortSignal): Promise<FetchedArtifact> {
    const attributes = {
      "engine.bounty.id": bounty.id,
      // The scheme only: a URI may carry a token or a megabyte of data.
      "url.scheme": bounty.artifact_uri.split(":", 1)[0]?.slice(0, 16) ?? "",
    };
    return inSpan("download", attributes, async (span) => {
      const artifact = await this.#fetcher.fetch(bounty.artifact_uri, {
        signal,
        expectedSha256: bounty.sha256 ?? null,
        mimetype: bounty.mimetype ?? null,
      });
      span.setAttribute("engine.artifact.bytes", artifact.bytes);
      return artifact;
    });
  }

  /** Scans the downloaded artifact (for a `url` bounty, the URL it holds) before `deadline`. */
  async #scan(
    bounty: Bounty,
    fetched: FetchedArtifact,
    deadline: number,
    shutdown: AbortSignal,
  ): Promise<ScanResult> {
    let artifact: Artifact = fetched.artifact;
    if (bounty.artifact_type === "url") {
      const text = Buffer.from(await fetched.artifact.bytes({ maxBytes: 64 * 1024 }))
        .toString("utf8")
        .trim();
      artifact = artifactFromUrl(text);
    }
    return inSpan("scan", { "engine.bounty.id": bounty.id }, async (span) => {
      const answer = await this.options.scanner.scan(artifact, { deadline, signal: shutdown });
      span.setAttribute("engine.verdict", answer.verdict);
      span.setAttribute(
        "engine.cache_hit",
        (answer.metadata.cache as { hit?: unknown } | undefined)?.hit === true,
      );
      return answer;
    });
  }
}
