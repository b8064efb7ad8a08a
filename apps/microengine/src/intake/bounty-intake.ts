import type { QueueReadiness } from "../http/readiness-body.js";
import type { Bounty } from "../protocol/bounty.js";

/** How busy the intake is, against its bounds: for `/readyz` and the metrics. */
export interface IntakeLoad {
  /** Bounties downloading or scanning now, and the most at once (BOUNTY_CONCURRENCY). */
  running: number;
  concurrency: number;
  /** Bounties waiting for a slot, and the most (BOUNTY_BACKLOG). */
  waiting: number;
  backlog: number;
  /** Accepted bounties not answered yet (waiting, running, or their answer being posted). */
  open: number;
  /** True when new work is answered SKIPPED:OVERLOADED or refused. */
  saturated: boolean;
}

/** What {@link BountyIntake.submit} did with a bounty. */
export type SubmitOutcome = "accepted" | "duplicate" | "overloaded" | "unavailable";

/** Where accepted bounties go: processed in this process, or queued for workers. */
export interface BountyIntake {
  /**
   * Takes a bounty: `"duplicate"` when it (or this delivery) was seen before its expiration,
   * `"overloaded"` when even its SKIPPED:OVERLOADED answer cannot be taken on, `"unavailable"`
   * when the queue cannot take it (Redis down): the webhook answers 503 and the marketplace
   * retries; the bounty is not remembered as seen.
   */
  submit(bounty: Bounty, deliveryId?: string): Promise<SubmitOutcome>;
  /** Why this `response_url` would be refused (undefined when it may be used). */
  responseRefusal(url: string): string | undefined;
  /** Bounties being handled here. */
  readonly inFlight: number;
  /** Load against the bounds. */
  load(): IntakeLoad;
  /**
   * Queue mode: whether Redis answers, the queue's job counts by state, the workers connected
   * and a warning while jobs wait with none.
   */
  queueState?(): Promise<QueueReadiness>;
  /** Stops taking work and finishes (or answers) what is in flight. */
  drain(): Promise<void>;
}
