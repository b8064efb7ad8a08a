import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Scanner } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  scanStopSignals,
  signalExitCode,
  stopOnScanSignals,
} from "../../../src/commands/scan/scan-signals.js";
import { fakeScanner, resultOf, scan, tinyFiles } from "./scan-fakes.js";

// Issue 22, "processes left behind" (scan part): SIGINT, SIGTERM and SIGHUP stop the walk and
// the scans, and the report ends with what it had. (The spawned process, its exit codes and
// the managed clamd's end: scan-signals.int.test.ts.)
let tree: string;
beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), "engine-scan-stop-"));
  await tinyFiles(tree, 400);
});
afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

describe("stopOnScanSignals", () => {
  it("exit codes are 128 + the signal: 130, 143, 129", () => {
    expect(
      ["SIGINT", "SIGTERM", "SIGHUP"].map((name) => signalExitCode(name as NodeJS.Signals)),
    ).toEqual([130, 143, 129]);
  });

  it("the first signal aborts, a second exits at once with its code, release removes the handlers", () => {
    const before = scanStopSignals.map((name) => process.listenerCount(name));
    const exits: number[] = [];
    const stop = stopOnScanSignals(undefined, (code) => exits.push(code));
    try {
      process.emit("SIGHUP", "SIGHUP");
      expect(stop.signal.aborted).toBe(true);
      expect(stop.received()).toBe("SIGHUP");
      expect(exits).toEqual([]);
      process.emit("SIGINT", "SIGINT");
      expect(exits).toEqual([130]);
      expect(stop.received()).toBe("SIGHUP");
    } finally {
      stop.release();
    }
    expect(scanStopSignals.map((name) => process.listenerCount(name))).toEqual(before);
  });
});

describe("scanPaths, stopped", () => {
  it("stops walking and scanning, aborts the scans in flight, and ends the report with the counts so far", async () => {
    const controller = new AbortController();
    let calls = 0;
    let inFlightAborted = 0;
    const scanner: Scanner = {
      name: "fake",
      scan: async (_artifact, options) => {
        calls += 1;
        if (calls === 50) controller.abort();
        await new Promise((resolve) => setTimeout(resolve, 1));
        // The scans get the stop's signal (a real backend then rejects with SCAN_ABORTED).
        if (options?.signal?.aborted) inFlightAborted += 1;
        return resultOf("benign");
      },
      [Symbol.asyncDispose]: async () => {},
    };
    const stop = {
      signal: controller.signal,
      received: () => (controller.signal.aborted ? ("SIGTERM" as const) : undefined),
    };
    const { summary, stdout, stderr } = await scan(scanner, [tree], { concurrency: 2, stop });
    expect(summary.interrupted).toBe("SIGTERM");
    // No scan starts after the stop: only the other one in flight (--concurrency 2) was running.
    expect(calls).toBeLessThanOrEqual(51);
    expect(summary.files).toBeLessThan(50);
    expect(inFlightAborted).toBeGreaterThan(0);
    expect(stdout).toMatch(
      / {2}scanned {5}\d+\n\n {2}interrupted by SIGTERM: the counts are those so far\n$/,
    );
    expect(stderr).toContain("microengine: SIGTERM: stopping the scan and the backends\n");
    expect(stderr).toMatch(/scan interrupted by SIGTERM: \d+ found, \d+ files scanned/);
  });

  it("sarif: the log still ends (valid JSON) and says the run did not succeed", async () => {
    const controller = new AbortController();
    controller.abort();
    const stop = { signal: controller.signal, received: () => "SIGINT" as const };
    const { stdout } = await scan(
      fakeScanner(() => resultOf("benign")),
      [tree],
      { format: "sarif", stop },
    );
    const invocation = JSON.parse(stdout).runs[0].invocations[0];
    expect(invocation.executionSuccessful).toBe(false);
    expect(invocation.toolExecutionNotifications[0].message.text).toBe(
      "interrupted by SIGINT: not finished",
    );
  });
});
