import { createScanSignal, OverloadedError } from "@engine/core";
import type { EngineConfig } from "../config/config.js";
import type { Bounty } from "../protocol/bounty.js";
import type { BountySlots } from "./bounty-slots.js";

/**
 * How a bounty gets one of the processor's slots before its download and scan. The caller
 * chooses one: a webhook's bounty goes through the bounded backlog ({@link BacklogAdmission}),
 * a queue job waits for a slot ({@link WaitingAdmission}: the queue bounds its own intake).
 */
export interface Admission {
  /**
   * Resolves holding a slot (given back with `BountySlots.release`); rejects with
   * `OverloadedError`, or with the shutdown's reason, holding none.
   * @param deadline when the scan must be done, in epoch ms (expiration - ANSWER_MARGIN_MS)
   */
  admit(bounty: Bounty, deadline: number, shutdown: AbortSignal): Promise<void>;
  /**
   * True when a shutdown may hand a bounty admitted here back unanswered (a queue job: the
   * queue retries it); false for a webhook's bounty, which nobody would retry.
   */
  readonly handsBack: boolean;
}

/** Bytes a waiting bounty holds: its artifact URI (a `data:` URI carries the artifact) and the rest. */
function bountyBytes(bounty: Bounty): number {
  return bounty.artifact_uri.length + bounty.response_url.length + 2048;
}

/** A queue job's admission: waits for a slot until one frees up or the engine shuts down. */
export class WaitingAdmission implements Admission {
  readonly handsBack = true;

  constructor(private readonly slots: BountySlots) {}

  admit(_bounty: Bounty, _deadline: number, shutdown: AbortSignal): Promise<void> {
    return this.slots.acquire(shutdown);
  }
}

/**
 * A webhook's admission: takes a slot now, or waits in the bounded backlog (BOUNTY_BACKLOG
 * bounties, BOUNTY_BACKLOG_BYTES bytes) until one frees up. Throws `OverloadedError` (the
 * bounty is answered `SKIPPED:OVERLOADED`) when the backlog is full, when the bounty would
 * not be scanned before its deadline (judged by the median service time of the last 64), when
 * the deadline passes while it waits, or when the slot comes too late to use.
 */
export class BacklogAdmission implements Admission {
  readonly handsBack = false;
  #waitingBytes = 0;

  constructor(
    private readonly slots: BountySlots,
    private readonly config: Pick<EngineConfig, "BOUNTY_BACKLOG_BYTES" | "BOUNTY_CONCURRENCY">,
  ) {}

  /** Bytes held by the bounties waiting in the backlog now. */
  get waitingBytes(): number {
    return this.#waitingBytes;
  }

  async admit(bounty: Bounty, deadline: number, shutdown: AbortSignal): Promise<void> {
    if (this.slots.tryAcquire()) return;
    this.#refuseDoomed(deadline);
    const bytes = bountyBytes(bounty);
    if (this.#waitingBytes + bytes > this.config.BOUNTY_BACKLOG_BYTES) {
      throw new OverloadedError({
        message: `@engine/microengine: the backlog holds ${this.#waitingBytes} bytes of bounties (BOUNTY_BACKLOG_BYTES ${this.config.BOUNTY_BACKLOG_BYTES})`,
      });
    }
    this.#waitingBytes += bytes;
    try {
      await this.#wait(deadline, shutdown);
    } finally {
      this.#waitingBytes -= bytes;
      // A waiter that left (deadline, shutdown) no longer counts in engine_bounties_waiting.
      this.slots.updateGauges();
    }
    const typicalServiceMs = this.slots.typicalServiceMs();
    if (Date.now() + typicalServiceMs > deadline) {
      // A slot, but too late to use it: give it to the next bounty.
      this.slots.giveBack();
      throw new OverloadedError({
        message: `@engine/microengine: a slot freed up ${deadline - Date.now()} ms before the bounty's deadline, less than a scan takes (about ${Math.round(typicalServiceMs)} ms)`,
      });
    }
  }

  /**
   * Work that cannot finish before its deadline is answered now, not started: a doomed
   * bounty would hold a slot until it times out while others wait.
   */
  #refuseDoomed(deadline: number): void {
    const { slots } = this;
    const serviceMs = slots.typicalServiceMs();
    const expectedWaitMs = ((slots.waiting + 1) / slots.concurrency + 1) * serviceMs;
    if (Date.now() + expectedWaitMs > deadline) {
      throw new OverloadedError({
        message: `@engine/microengine: ${slots.waiting} bounties wait for ${slots.concurrency} slots (about ${Math.round(serviceMs)} ms each): this one would not be scanned before its deadline`,
      });
    }
  }

  /** Waits for a slot until the deadline: the shutdown's reason, or `OverloadedError`. */
  async #wait(deadline: number, shutdown: AbortSignal): Promise<void> {
    // A plain timer held for the wait: `AbortSignal.any` over an `AbortSignal.timeout` lets
    // Node 20 collect the timeout before it fires (nodejs/node#57736), and a bounty whose
    // deadline passed would then hold its place in the backlog.
    using waited = createScanSignal({ signal: shutdown, deadline, scanner: "microengine" });
    try {
      const granted = this.slots.acquire(waited.signal);
      // After joining the queue (acquire queues at once): the gauge counts this waiter too.
      this.slots.updateGauges();
      await granted;
    } catch (error) {
      if (shutdown.aborted) throw shutdown.reason;
      if (OverloadedError.isInstance(error)) throw error;
      throw new OverloadedError({
        message: `@engine/microengine: no slot freed up before the bounty's deadline (BOUNTY_CONCURRENCY ${this.config.BOUNTY_CONCURRENCY})`,
      });
    }
  }
}
