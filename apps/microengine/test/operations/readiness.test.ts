import type { ClamavScanner } from "@engine/clamav";
import { BackendUnavailableError, type Scanner } from "@engine/core";
import { describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import { clamdHealth } from "../../src/backends/clamav/clamav-backend.js";
import { createMetrics, type EngineMetrics } from "../../src/operations/metrics.js";
import { createReadinessProbe } from "../../src/operations/readiness.js";

/** A running backend with its own health probe (the table's shape), scanning nothing. */
function backend(name: string, health: EngineBackend["health"]): EngineBackend {
  return {
    name,
    scanner: { name } as Scanner,
    status: { name, running: true, reason: "test" },
    health,
  };
}

/** The ClamAV backend's health over a scripted clamd: its VERSION reply's database date, `hoursOld` ago (undefined: no official database). */
function withClamd(hoursOld: number | undefined, metrics?: EngineMetrics) {
  // clamd writes the date as ctime does: "Thu Nov 20 08:00:00 2026" (no zone: the machine's).
  const at = new Date(Date.now() - (hoursOld ?? 0) * 3_600_000);
  const ctime = `${at.toDateString().slice(0, 10)} ${at.toTimeString().slice(0, 8)} ${at.getFullYear()}`;
  const databaseDate = hoursOld === undefined ? undefined : ctime;
  const clamav = {
    name: "clamav",
    client: { ping: async () => {}, usage: { inUse: 0, waiting: 0, max: 1 } },
    alertStatus: () => undefined, // a managed clamd (no alert verification)
    version: async () => ({
      engineVersion: "1.4.6",
      ...(databaseDate ? { databaseVersion: "27000", databaseDate } : {}),
    }),
  } as unknown as ClamavScanner;
  return {
    running: [backend("clamav", () => clamdHealth(clamav, 72, metrics))],
  };
}

describe("readiness and the ClamAV database age", () => {
  it("fails when the official database is older than CLAMAV_MAX_DATABASE_AGE_HOURS, and says why", async () => {
    const metrics = createMetrics();
    const stale = await createReadinessProbe(withClamd(100, metrics))();
    expect(stale.ready).toBe(false);
    expect(stale.checks.clamav).toMatchObject({
      ok: false,
      database: "27000",
      databaseAgeHours: 100,
      maxDatabaseAgeHours: 72,
      problem: expect.stringMatching(/CLAMAV_MAX_DATABASE_AGE_HOURS \(72\): run freshclam/),
    });
    const age = (await metrics.registry.getSingleMetricAsString("engine_signatures_age_seconds"))
      .split("\n")
      .find((line) => line.startsWith('engine_signatures_age_seconds{backend="clamav"}'));
    expect(Number(age?.split(" ")[1])).toBeGreaterThanOrEqual(100 * 3600 - 5);
  });

  it("passes with a fresh database, and without an official one (the start banner warns about that)", async () => {
    expect((await createReadinessProbe(withClamd(5))()).ready).toBe(true);
    const custom = await createReadinessProbe(withClamd(undefined))();
    expect(custom.ready).toBe(true);
    expect(custom.checks.clamav).toMatchObject({ ok: true, database: "custom" });
  });
});

describe("readiness reads the backends table", () => {
  it("lists every running backend; one whose probe throws is not ready, with its public code only", async () => {
    const readiness = await createReadinessProbe({
      running: [
        backend("word", async () => ({ ok: true, kind: "module" })),
        backend("clamav", async () => {
          throw new BackendUnavailableError({
            message: "cannot connect to clamd at unix:/secret/path/clamd.sock",
          });
        }),
      ],
    })();
    expect(readiness.ready).toBe(false);
    expect(readiness.checks.word).toEqual({ ok: true, kind: "module" });
    expect(readiness.checks.clamav).toMatchObject({ ok: false, code: "BACKEND_UNAVAILABLE" });
    expect(JSON.stringify(readiness.checks)).not.toContain("/secret/path");
  });

  it("probes the backends at most once a second, however many requests come", async () => {
    let probes = 0;
    const probe = createReadinessProbe({
      running: [
        backend("counted", async () => {
          probes += 1;
          return { ok: true };
        }),
      ],
    });
    await Promise.all(Array.from({ length: 50 }, () => probe()));
    expect(probes).toBe(1);
  });
});
