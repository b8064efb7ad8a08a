import { describe, expect, it } from "vitest";
import { ConcurrencyLimit, OverloadedError } from "../src/index.js";

describe("ConcurrencyLimit", () => {
  it("holds at most `concurrency`, queues FIFO up to maxWaiting and refuses the next with OverloadedError", async () => {
    const limit = new ConcurrencyLimit({ concurrency: 2, maxWaiting: 2 });
    await limit.acquire();
    await limit.acquire();
    const order: number[] = [];
    const third = limit.acquire().then(() => order.push(3));
    const fourth = limit.acquire().then(() => order.push(4));
    expect(limit).toMatchObject({ running: 2, waiting: 2, free: 0 });
    await expect(limit.acquire()).rejects.toBeInstanceOf(OverloadedError);
    limit.release();
    limit.release();
    await Promise.all([third, fourth]);
    expect(order).toEqual([3, 4]);
    limit.release();
    limit.release();
    expect(limit).toMatchObject({ running: 0, waiting: 0, free: 2 });
    limit.release(); // an extra release never makes room for more than `concurrency`
    expect(limit.free).toBe(2);
  });

  it("never gives a slot to an aborted signal, and a waiter that aborts leaves the queue", async () => {
    const limit = new ConcurrencyLimit({ concurrency: 1 });
    const aborted = AbortSignal.abort(new Error("stop"));
    await expect(limit.acquire(aborted)).rejects.toThrow("stop");
    expect(limit.running).toBe(0);
    await limit.acquire();
    const controller = new AbortController();
    const waiting = limit.acquire(controller.signal);
    const next = limit.acquire();
    controller.abort(new Error("gone"));
    await expect(waiting).rejects.toThrow("gone");
    expect(limit.waiting).toBe(1);
    limit.release();
    await next; // the slot went to the next waiter, not the aborted one
    expect(limit.running).toBe(1);
  });

  it("hands on a slot granted to a waiter whose signal fired without telling it yet", async () => {
    const limit = new ConcurrencyLimit({ concurrency: 1 });
    await limit.acquire();
    // A signal that reports aborted but never dispatches its event (as a stale composite may).
    const silent = new EventTarget() as AbortSignal;
    Object.defineProperties(silent, {
      aborted: { value: false, configurable: true },
      reason: { value: new Error("late") },
    });
    const first = limit.acquire(silent);
    const second = limit.acquire();
    Object.defineProperty(silent, "aborted", { value: true });
    limit.release();
    await expect(first).rejects.toThrow("late");
    await second;
    expect(limit).toMatchObject({ running: 1, waiting: 0 });
  });
});
