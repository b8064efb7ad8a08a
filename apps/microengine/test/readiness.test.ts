import { describe, expect, it } from "vitest";
import type { EngineBackends } from "../src/engine-backends.js";
import { createMetrics } from "../src/metrics.js";
import { createReadinessProbe } from "../src/readiness.js";

/** Backends with a scripted clamd: its VERSION reply's database date, `hoursOld` ago (undefined: no official database). */
function withClamd(hoursOld: number | undefined): EngineBackends {
  // clamd writes the date as ctime does: "Thu Nov 20 08:00:00 2026" (no zone: the machine's).
  const at = new Date(Date.now() - (hoursOld ?? 0) * 3_600_000);
  const ctime = `${at.toDateString().slice(0, 10)} ${at.toTimeString().slice(0, 8)} ${at.getFullYear()}`;
  const databaseDate = hoursOld === undefined ? undefined : ctime;
  return {
    modules: [],
    statuses: [],
    clamav: {
      client: { ping: async () => {}, usage: { inUse: 0, idle: 1 } },
      version: async () => ({
        engineVersion: "1.4.6",
        ...(databaseDate ? { databaseVersion: "27000", databaseDate } : {}),
      }),
    },
  } as unknown as EngineBackends;
}

describe("readiness and the ClamAV database age", () => {
  it("fails when the official database is older than CLAMAV_MAX_DATABASE_AGE_HOURS, and says why", async () => {
    const metrics = createMetrics();
    const stale = await createReadinessProbe(withClamd(100), {
      maxDatabaseAgeHours: 72,
      metrics,
    })();
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
    const options = { maxDatabaseAgeHours: 72 };
    expect((await createReadinessProbe(withClamd(5), options)()).ready).toBe(true);
    const custom = await createReadinessProbe(withClamd(undefined), options)();
    expect(custom.ready).toBe(true);
    expect(custom.checks.clamav).toMatchObject({ ok: true, database: "custom" });
  });
});
