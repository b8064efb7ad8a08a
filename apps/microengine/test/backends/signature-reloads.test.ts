import pino from "pino";
import { describe, expect, it } from "vitest";
import { type ReloadableBackend, SignatureReloads } from "../../src/backends/signature-reloads.js";
import type { EngineMetrics } from "../../src/operations/metrics.js";

/** A backend whose reloads wait until the test lets them finish; counts them. */
function heldBackend(name: string, readsRulesDirectory: boolean) {
  const pending: Array<(ok: boolean) => void> = [];
  const backend = {
    name,
    readsRulesDirectory,
    reloads: 0,
    reload: () =>
      new Promise<boolean>((resolve) => {
        backend.reloads += 1;
        pending.push(resolve);
      }),
    /** Ends the oldest reload still running, once it has started. */
    finish: async (ok = true) => {
      await waitFor(() => pending.length > 0);
      pending.shift()?.(ok);
    },
  };
  return backend;
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let turn = 0; turn < 100 && !condition(); turn += 1)
    await new Promise((resolve) => setImmediate(resolve));
  expect(condition()).toBe(true);
}

function recordingLogger() {
  const lines: string[] = [];
  return {
    lines,
    logger: pino({ level: "info" }, { write: (line: string) => void lines.push(line) }),
  };
}

describe("signature reloads", () => {
  it("run one at a time: requests during a reload collapse into one next reload, and say so", async () => {
    const yara = heldBackend("yara", true);
    const { lines, logger } = recordingLogger();
    const reloads = new SignatureReloads([yara], logger);
    const first = reloads.reload();
    const second = reloads.reload();
    const third = reloads.reload();
    expect(third).toBe(second);
    expect(reloads.reloading).toBe(true);
    await yara.finish();
    await expect(first).resolves.toBe(true);
    await yara.finish(false);
    await expect(second).resolves.toBe(false);
    expect(yara.reloads).toBe(2);
    expect(reloads.reloading).toBe(false);
    expect(lines.filter((line) => line.includes("a reload is already running"))).toHaveLength(2);
  });

  it("the collapsed reload reloads every backend when one request asked for every backend", async () => {
    const yara = heldBackend("yara", true);
    const clamav = heldBackend("clamav", false);
    const reloads = new SignatureReloads([yara, clamav], pino({ level: "silent" }));
    const first = reloads.reload({ rulesDirectoryOnly: true });
    const watched = reloads.reload({ rulesDirectoryOnly: true });
    const signalled = reloads.reload();
    await yara.finish();
    await first;
    expect(clamav.reloads).toBe(0); // RULES_WATCH alone reloads only what reads RULES_DIR
    await yara.finish();
    await clamav.finish();
    await expect(Promise.all([watched, signalled])).resolves.toEqual([true, true]);
    expect([yara.reloads, clamav.reloads]).toEqual([2, 1]);
  });

  it("a backend whose reload throws is counted and logged; the others still reload", async () => {
    const failures: string[] = [];
    const metrics = {
      rulesReloadFailures: {
        inc: (labels: { backend: string }) => void failures.push(labels.backend),
      },
    } as unknown as Pick<EngineMetrics, "rulesReloadFailures">;
    const broken: ReloadableBackend = {
      name: "broken",
      reload: async () => {
        throw new Error("boom");
      },
    };
    let reloaded = 0;
    const yara: ReloadableBackend = {
      name: "yara",
      reload: async () => {
        reloaded += 1;
        return true;
      },
    };
    const { lines, logger } = recordingLogger();
    const reloads = new SignatureReloads([broken, yara], logger, metrics);
    await expect(reloads.reload()).resolves.toBe(false);
    expect(reloaded).toBe(1);
    expect(failures).toEqual(["broken"]);
    expect(lines.join("\n")).toMatch(/signatures NOT reloaded/);
    expect(reloads.reloading).toBe(false);
  });
});
