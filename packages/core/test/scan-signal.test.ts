import { describe, expect, it } from "vitest";
import {
  BackendUnavailableError,
  createScanSignal,
  errorFromSignal,
  raceSignal,
  ScanAbortedError,
  ScanTimeoutError,
} from "../src/index.js";

describe("createScanSignal", () => {
  it("fires with ScanTimeoutError at the deadline", async () => {
    using stop = createScanSignal({ deadline: Date.now() + 30, scanner: "s" });
    expect(stop.signal.aborted).toBe(false);
    expect(stop.remainingMs()).toBeGreaterThan(0);
    await new Promise((resolve) => stop.signal.addEventListener("abort", resolve));
    expect(ScanTimeoutError.isInstance(stop.signal.reason)).toBe(true);
    expect(() => stop.throwIfStopped()).toThrow(/s passed its deadline/);
    expect(stop.remainingMs()).toBe(0);
  });

  it("is stopped at once for a past deadline or an aborted parent", () => {
    expect(createScanSignal({ deadline: Date.now() - 5 }).signal.aborted).toBe(true);
    const parent = new AbortController();
    parent.abort(new Error("user pressed stop"));
    const stop = createScanSignal({ signal: parent.signal });
    expect(ScanAbortedError.isInstance(stop.signal.reason)).toBe(true);
    expect((stop.signal.reason as Error).cause).toEqual(new Error("user pressed stop"));
  });

  it("follows the parent signal and keeps an engine error reason as it is", () => {
    const parent = new AbortController();
    using stop = createScanSignal({ signal: parent.signal, deadline: Date.now() + 60_000 });
    const reason = new BackendUnavailableError({ message: "gone" });
    parent.abort(reason);
    expect(stop.signal.reason).toBe(reason);
  });

  it("has no deadline when none is given", () => {
    using stop = createScanSignal();
    expect(stop.remainingMs()).toBe(Number.POSITIVE_INFINITY);
    expect(stop.deadline).toBeUndefined();
  });

  it("maps AbortSignal.timeout reasons to ScanTimeoutError", async () => {
    const signal = AbortSignal.timeout(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(ScanTimeoutError.isInstance(errorFromSignal(signal))).toBe(true);
  });
});

describe("raceSignal", () => {
  it("resolves with the promise when the signal stays quiet", async () => {
    await expect(raceSignal(Promise.resolve(3), new AbortController().signal)).resolves.toBe(3);
  });

  it("rejects with the typed reason when the signal fires first, even if the work never ends", async () => {
    const controller = new AbortController();
    const never = new Promise<never>(() => {});
    setTimeout(() => controller.abort(), 10);
    await expect(raceSignal(never, controller.signal)).rejects.toBeInstanceOf(ScanAbortedError);
  });

  it("passes the work's own rejection through", async () => {
    await expect(
      raceSignal(Promise.reject(new Error("boom")), new AbortController().signal),
    ).rejects.toThrow("boom");
  });
});
