import {
  artifactFromBytes,
  BackendUnavailableError,
  eicarBytes,
  ScanAbortedError,
  type ScanResult,
  ScanTimeoutError,
} from "@engine/core";
import { describe, expect, it, vi } from "vitest";
import type { EngineBackends } from "../../src/backends/build-backends.js";
import { lazyBackends, startRetryAfterMs } from "../../src/backends/lazy-backends.js";
import { createReadinessProbe } from "../../src/operations/readiness.js";

const malicious: ScanResult = {
  verdict: "malicious",
  confidence: 1,
  metadata: { malware_family: "EICAR", comments: [] },
};

/** Backends as buildBackends gives them, whose scans answer `malicious`. */
function builtBackends(): EngineBackends & { dispose: ReturnType<typeof vi.fn> } {
  return {
    scanner: {
      name: "multi",
      scan: vi.fn(async () => malicious),
      signaturesVersion: "v1",
      [Symbol.asyncDispose]: async () => {},
    },
    multi: {} as EngineBackends["multi"],
    cache: "redis",
    running: [
      {
        name: "eicar",
        health: async () => ({ ok: true }),
      } as unknown as EngineBackends["running"][number],
    ],
    statuses: [],
    reload: vi.fn(async () => true),
    dispose: vi.fn(async () => {}),
  };
}

const artifact = () => artifactFromBytes(eicarBytes());

describe("lazyBackends (queue mode's serve)", () => {
  it("starts nothing until the first scan, then once however many scans arrive together", async () => {
    const built = builtBackends();
    const start = vi.fn(async () => built);
    const backends = lazyBackends(start);
    expect(start).not.toHaveBeenCalled();
    expect(backends).toMatchObject({ started: false, running: [], statuses: [], cache: "off" });
    expect(await backends.reload()).toBe(true);
    expect(await createReadinessProbe(backends)()).toEqual({
      ready: true,
      checks: { backends: { ok: true, note: expect.stringContaining("first POST /scan") } },
    });

    const results = await Promise.all([1, 2, 3].map(() => backends.scanner.scan(artifact())));
    expect(results.map((result) => result.verdict)).toEqual([
      "malicious",
      "malicious",
      "malicious",
    ]);
    expect(start).toHaveBeenCalledOnce();
    expect(backends).toMatchObject({ started: true, cache: "redis" });
    expect(backends.running.map((backend) => backend.name)).toEqual(["eicar"]);
    expect(backends.scanner.signaturesVersion).toBe("v1");
    expect((await createReadinessProbe(backends)()).checks).toEqual({ eicar: { ok: true } });
    await backends.reload();
    expect(built.reload).toHaveBeenCalledOnce();
  });

  it("fails the scans of a start that fails with BackendUnavailableError, never an answer, and tries again a few seconds later", async () => {
    const built = builtBackends();
    const start = vi
      .fn<() => Promise<EngineBackends>>()
      .mockRejectedValueOnce(new Error("clamd is not installed"))
      .mockResolvedValueOnce(built);
    const reported: unknown[] = [];
    const backends = lazyBackends(start, (error) => reported.push(error));
    const failed = backends.scanner.scan(artifact());
    await expect(failed).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(failed).rejects.toThrow(/could not start: clamd is not installed/);
    expect(reported).toEqual([new Error("clamd is not installed")]);
    expect(backends).toMatchObject({
      started: false,
      startError: expect.stringContaining("clamd"),
    });
    expect(await createReadinessProbe(backends)()).toMatchObject({
      ready: true,
      checks: { backends: { lastStart: "failed (see the log)" } },
    });
    // Within the retry window: the same failure at once, no second start.
    await expect(backends.scanner.scan(artifact())).rejects.toBeInstanceOf(BackendUnavailableError);
    expect(start).toHaveBeenCalledOnce();
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + startRetryAfterMs + 1 });
    try {
      expect((await backends.scanner.scan(artifact())).verdict).toBe("malicious");
    } finally {
      vi.useRealTimers();
    }
    expect(start).toHaveBeenCalledTimes(2);
    expect(backends.startError).toBeUndefined();
  });

  it("lets a scan waiting for the start end at its deadline or signal; the start goes on for the next", async () => {
    let finish: (backends: EngineBackends) => void = () => {};
    const start = vi.fn(
      () =>
        new Promise<EngineBackends>((resolve) => {
          finish = resolve;
        }),
    );
    const backends = lazyBackends(start);
    await expect(
      backends.scanner.scan(artifact(), { deadline: Date.now() + 50 }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
    const controller = new AbortController();
    const stopped = backends.scanner.scan(artifact(), { signal: controller.signal });
    controller.abort();
    await expect(stopped).rejects.toBeInstanceOf(ScanAbortedError);
    const reloading = backends.reload(); // waits for the start in progress
    const built = builtBackends();
    finish(built);
    expect(await reloading).toBe(true);
    expect(built.reload).toHaveBeenCalledOnce();
    expect((await backends.scanner.scan(artifact())).verdict).toBe("malicious");
    expect(start).toHaveBeenCalledOnce();
  });

  it("disposes what a start in progress gives, and scans nothing after", async () => {
    const built = builtBackends();
    let finish: (backends: EngineBackends) => void = () => {};
    const backends = lazyBackends(
      () =>
        new Promise<EngineBackends>((resolve) => {
          finish = resolve;
        }),
    );
    const scanning = backends.scanner.scan(artifact());
    const disposing = backends.dispose();
    finish(built);
    await disposing;
    expect(built.dispose).toHaveBeenCalledOnce();
    expect(backends.started).toBe(false);
    await scanning.catch(() => {}); // a scan in flight at the stop: whatever it gives is not ours
    await expect(backends.scanner.scan(artifact())).rejects.toBeInstanceOf(BackendUnavailableError);
  });

  it("disposes nothing when it never started", async () => {
    const start = vi.fn(async () => builtBackends());
    const backends = lazyBackends(start);
    await backends.dispose();
    expect(start).not.toHaveBeenCalled();
  });
});
