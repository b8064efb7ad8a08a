import { OverloadedError } from "@engine/core";
import { Gauge, Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { BacklogAdmission, WaitingAdmission } from "../../src/intake/admission.js";
import { BountySlots } from "../../src/intake/bounty-slots.js";
import type { Bounty } from "../../src/protocol/bounty.js";

/** The gauges the slots keep, in a registry of their own. */
function gauges() {
  const registers = [new Registry()];
  return {
    bountiesRunning: new Gauge({ name: "running", help: "running", registers }),
    bountiesWaiting: new Gauge({ name: "waiting", help: "waiting", registers }),
  };
}

async function gaugeValue(gauge: Gauge): Promise<number | undefined> {
  return (await gauge.get()).values[0]?.value;
}

/** What admission reads of a bounty: the sizes of its URIs. */
function bounty(artifactUri = "https://a.example/artifact"): Bounty {
  return { artifact_uri: artifactUri, response_url: "https://m.example/answers/1" } as Bounty;
}

function setUp(config: { concurrency?: number; backlog?: number; backlogBytes?: number } = {}) {
  const metrics = gauges();
  const slots = new BountySlots(
    { BOUNTY_CONCURRENCY: config.concurrency ?? 1, BOUNTY_BACKLOG: config.backlog ?? 4 },
    metrics,
  );
  const admission = new BacklogAdmission(slots, {
    BOUNTY_CONCURRENCY: config.concurrency ?? 1,
    BOUNTY_BACKLOG_BYTES: config.backlogBytes ?? 1_000_000,
  });
  return { metrics, slots, admission };
}

const never = new AbortController().signal;

describe("the backlog admission of webhook bounties", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("takes a free slot at once, and lets a waiter in when it is given back", async () => {
    const { metrics, slots, admission } = setUp();
    await admission.admit(bounty(), Date.now() + 10_000, never);
    expect(slots.running).toBe(1);
    let admitted = false;
    const waiter = admission.admit(bounty(), Date.now() + 10_000, never).then(() => {
      admitted = true;
    });
    await vi.advanceTimersByTimeAsync(0);
    expect(admitted).toBe(false);
    expect(slots.waiting).toBe(1);
    expect(admission.waitingBytes).toBeGreaterThan(2048);
    slots.release(10);
    await waiter;
    expect(slots.running).toBe(1);
    expect(admission.waitingBytes).toBe(0);
    expect(await gaugeValue(metrics.bountiesWaiting)).toBe(0);
  });

  it("refuses a bounty that would not be scanned before its deadline, by the median service time", async () => {
    const { slots, admission } = setUp();
    for (const serviceMs of [900, 1_000, 50_000]) {
      await admission.admit(bounty(), Date.now() + 100_000, never);
      slots.release(serviceMs);
    }
    await admission.admit(bounty(), Date.now() + 100_000, never);
    // One waiter ahead of none, a slot of 1: about (1 / 1 + 1) x 1,000 ms before it is scanned.
    await expect(admission.admit(bounty(), Date.now() + 1_900, never)).rejects.toThrow(
      /0 bounties wait for 1 slots \(about 1000 ms each\): this one would not be scanned before its deadline/,
    );
    expect(slots.waiting).toBe(0);
  });

  it("refuses a bounty past BOUNTY_BACKLOG_BYTES, and past BOUNTY_BACKLOG", async () => {
    const { admission } = setUp({ backlog: 1, backlogBytes: 10_000 });
    await admission.admit(bounty(), Date.now() + 10_000, never);
    await expect(
      admission.admit(bounty(`data:,${"x".repeat(10_000)}`), Date.now() + 10_000, never),
    ).rejects.toThrow(/the backlog holds 0 bytes of bounties \(BOUNTY_BACKLOG_BYTES 10000\)/);
    const waiting = expect(admission.admit(bounty(), Date.now() + 10_000, never)).rejects.toThrow(
      /no slot freed up/,
    );
    const refused = admission.admit(bounty(), Date.now() + 10_000, never);
    await expect(refused).rejects.toSatisfy((error) => OverloadedError.isInstance(error));
    await expect(refused).rejects.toThrow(/all 1 bounty slots \(BOUNTY_CONCURRENCY\) are busy/);
    await vi.advanceTimersByTimeAsync(10_000);
    await waiting;
  });

  it("answers a waiter overloaded when its deadline passes, and lets it go from the backlog and the gauge", async () => {
    const { metrics, slots, admission } = setUp({ concurrency: 1 });
    await admission.admit(bounty(), Date.now() + 10_000, never);
    const waiter = admission.admit(bounty(), Date.now() + 5_000, never);
    const refused = expect(waiter).rejects.toThrow(
      "@engine/microengine: no slot freed up before the bounty's deadline (BOUNTY_CONCURRENCY 1)",
    );
    await vi.advanceTimersByTimeAsync(5_000);
    await refused;
    expect(slots.waiting).toBe(0);
    expect(admission.waitingBytes).toBe(0);
    expect(await gaugeValue(metrics.bountiesWaiting)).toBe(0);
  });

  it("rejects a waiter with the shutdown's reason", async () => {
    const { admission } = setUp();
    await admission.admit(bounty(), Date.now() + 10_000, never);
    const shutdown = new AbortController();
    const waiter = admission.admit(bounty(), Date.now() + 10_000, shutdown.signal);
    const reason = new Error("shutting down");
    shutdown.abort(reason);
    await expect(waiter).rejects.toBe(reason);
    expect(admission.waitingBytes).toBe(0);
  });

  it("gives a slot that frees up too late to the next bounty", async () => {
    const { slots, admission } = setUp();
    await admission.admit(bounty(), Date.now() + 10_000, never);
    slots.release(1_000);
    await admission.admit(bounty(), Date.now() + 10_000, never);
    // Expected wait (1 / 1 + 1) x 1,000 ms fits in 2,500 ms, but the slot frees up after 2,000.
    const waiter = admission.admit(bounty(), Date.now() + 2_500, never);
    const refused = expect(waiter).rejects.toThrow(
      /a slot freed up 500 ms before the bounty's deadline, less than a scan takes \(about 1000 ms\)/,
    );
    await vi.advanceTimersByTimeAsync(2_000);
    slots.release(1_000);
    await refused;
    expect(slots.running).toBe(0);
  });
});

describe("the waiting admission of queue jobs", () => {
  it("waits for a slot however near the deadline, until the shutdown", async () => {
    const slots = new BountySlots({ BOUNTY_CONCURRENCY: 1, BOUNTY_BACKLOG: 4 }, gauges());
    const admission = new WaitingAdmission(slots);
    expect(admission.handsBack).toBe(true);
    expect(
      new BacklogAdmission(slots, { BOUNTY_CONCURRENCY: 1, BOUNTY_BACKLOG_BYTES: 1 }).handsBack,
    ).toBe(false);
    await admission.admit(bounty(), Date.now() - 1_000, never);
    const next = admission.admit(bounty(), Date.now() - 1_000, never);
    slots.release(10);
    await next;
    expect(slots.running).toBe(1);
    const shutdown = new AbortController();
    const waiter = admission.admit(bounty(), Date.now() + 10_000, shutdown.signal);
    shutdown.abort(new Error("handed back"));
    await expect(waiter).rejects.toThrow("handed back");
  });
});
