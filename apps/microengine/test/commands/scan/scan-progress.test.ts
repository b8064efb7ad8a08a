import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { progressMode, ScanProgress } from "../../../src/commands/scan/scan-progress.js";
import { fakeScanner, resultOf, scan, sink, tinyFiles } from "./scan-fakes.js";

// Issue 22, item 5: progress from the first second (entries found, scanned, rate), on stderr
// only; plain lines when stderr is not a terminal, with --progress.
let tree: string;
beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), "engine-scan-progress-"));
  await tinyFiles(tree, 60);
});
afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

/** Benign answers, each after `ms` milliseconds. */
const slow = (ms: number) =>
  fakeScanner(async () => {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return resultOf("benign");
  });

describe("scan progress", () => {
  it("--progress / --no-progress / neither: live on a terminal, plain lines only when asked elsewhere", () => {
    expect(progressMode(undefined, true)).toBe("live");
    expect(progressMode(true, true)).toBe("live");
    expect(progressMode(false, true)).toBe("off");
    expect(progressMode(undefined, false)).toBe("off");
    expect(progressMode(true, false)).toBe("lines");
    expect(progressMode(false, false)).toBe("off");
  });

  it("prints the first plain line at the first tick, when the wall clock reads a millisecond short of a second", () => {
    vi.useFakeTimers({ toFake: ["setInterval", "clearInterval", "Date"] });
    try {
      const started = Date.now();
      const err = sink();
      const progress = new ScanProgress({ mode: "lines", out: sink().stream, err: err.stream });
      // The wall clock a millisecond behind the timers' (before, the line waited a whole
      // second more, and a scan that ended meanwhile printed none).
      vi.setSystemTime(started - 1);
      vi.advanceTimersByTime(1000);
      expect(err.text()).toMatch(/^scan progress: 0 found, 0 files scanned, .*, 1 s\n$/);
      progress.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it("--progress off a terminal: plain lines on stderr while the scan runs, none on stdout (a JSON report)", async () => {
    const err = sink();
    const { stdout } = await scan(slow(20), [tree], {
      format: "json",
      concurrency: 1,
      progress: true,
      progressIntervalMs: 200,
      err: err.stream,
    });
    const lines = err
      .text()
      .split("\n")
      .filter((line) => line.startsWith("scan progress: "));
    // 60 files at 20 ms each, one at a time: over a second, so several lines.
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines[0]).toMatch(
      /^scan progress: \d+ found, \d+ files scanned, \d+\.\d files\/s, \d+ s$/,
    );
    // Found runs ahead of scanned (the walk streams into the scans, a window ahead).
    const [, found, scanned] = /(\d+) found, (\d+) files/.exec(lines[0] as string) ?? [];
    expect(Number(found)).toBeGreaterThan(Number(scanned));
    expect(Number(scanned)).toBeGreaterThan(0);
    expect(stdout).not.toMatch(/scan progress|files scanned/);
    expect(stdout.trim().split("\n")).toHaveLength(60);
  });

  it("off a terminal without --progress, and with --no-progress on one: no progress at all", async () => {
    const quiet = sink();
    await scan(slow(5), [tree], { concurrency: 1, progressIntervalMs: 50, err: quiet.stream });
    expect(quiet.text()).not.toMatch(/progress|found/);
    const terminal = sink({ isTTY: true });
    await scan(slow(1), [tree], { progress: false, err: terminal.stream });
    expect(terminal.text()).not.toMatch(/found/);
  });
});
