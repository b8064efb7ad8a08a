import { ConcurrencyLimit } from "@engine/core";
import type { EngineConfig } from "../config/config.js";
import type { EngineMetrics } from "../operations/metrics.js";

/** How many recent service times {@link BountySlots.typicalServiceMs} looks at. */
const serviceSampleCount = 64;

/**
 * The BOUNTY_CONCURRENCY slots a bounty holds while its artifact downloads and scans (at most
 * BOUNTY_BACKLOG wait for one), how long recent bounties held theirs, and the gauges
 * `engine_bounties_running` and `engine_bounties_waiting`. Shared by every {@link Admission}
 * of one processor.
 */
export class BountySlots {
  readonly #limit: ConcurrencyLimit;
  readonly #metrics: Pick<EngineMetrics, "bountiesRunning" | "bountiesWaiting">;
  /** How long recent bounties held a slot (download + scan), in ms: the last 64. */
  readonly #serviceSamples: number[] = [];

  constructor(
    config: Pick<EngineConfig, "BOUNTY_CONCURRENCY" | "BOUNTY_BACKLOG">,
    metrics: Pick<EngineMetrics, "bountiesRunning" | "bountiesWaiting">,
  ) {
    this.#limit = new ConcurrencyLimit({
      concurrency: config.BOUNTY_CONCURRENCY,
      maxWaiting: config.BOUNTY_BACKLOG,
      what: "bounty slots (BOUNTY_CONCURRENCY)",
    });
    this.#metrics = metrics;
  }

  /** Slots held now. */
  get running(): number {
    return this.#limit.running;
  }

  /** Bounties waiting for a slot now. */
  get waiting(): number {
    return this.#limit.waiting;
  }

  /** Slots in all (BOUNTY_CONCURRENCY). */
  get concurrency(): number {
    return this.#limit.concurrency;
  }

  /** Takes a slot when one is free now; false otherwise (never waits). */
  tryAcquire(): boolean {
    return this.#limit.tryAcquire();
  }

  /**
   * Takes a slot, waiting for one (FIFO). Rejects with the signal's reason when it fires, and
   * with `OverloadedError` when BOUNTY_BACKLOG bounties already wait.
   */
  acquire(signal: AbortSignal): Promise<void> {
    return this.#limit.acquire(signal);
  }

  /** Gives back a slot that was never used (it came too late); the gauges are not updated. */
  giveBack(): void {
    this.#limit.release();
  }

  /** Gives back a slot held for `serviceMs` (download + scan), remembered for {@link typicalServiceMs}. */
  release(serviceMs: number): void {
    this.#serviceSamples.push(serviceMs);
    if (this.#serviceSamples.length > serviceSampleCount) this.#serviceSamples.shift();
    this.#limit.release();
    this.updateGauges();
  }

  /** The median time a bounty holds a slot (robust to one huge artifact), in ms; 0 before any. */
  typicalServiceMs(): number {
    if (this.#serviceSamples.length === 0) return 0;
    const sorted = [...this.#serviceSamples].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] as number;
  }

  /** Sets `engine_bounties_running` and `engine_bounties_waiting` to the slots' state now. */
  updateGauges(): void {
    this.#metrics.bountiesRunning.set(this.#limit.running);
    this.#metrics.bountiesWaiting.set(this.#limit.waiting);
  }
}
