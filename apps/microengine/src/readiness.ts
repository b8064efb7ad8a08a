import { publicError } from "@engine/core";
import type { EngineBackends } from "./engine-backends.js";
import type { EngineMetrics } from "./metrics.js";

/** What the backends' readiness probe found: ready or not, and each backend's state. */
export interface BackendReadiness {
  ready: boolean;
  checks: Record<string, unknown>;
}

/** How long one probe's answer is reused, in ms. */
const probeReuseMs = 1_000;

/**
 * The backends' readiness, probed at most once a second however many `/readyz` requests come
 * (a flood of them never reaches clamd): clamd answers PING (its version, database age and
 * connections in use), YARA has a worker and rules (workers, busy, queued), and each
 * third-party backend is listed.
 */
export function createReadinessProbe(
  backends: EngineBackends,
  options: {
    /** clamd's official database older than this fails readiness (CLAMAV_MAX_DATABASE_AGE_HOURS). */
    maxDatabaseAgeHours: number;
    /** Where the signatures' ages are published (engine_signatures_age_seconds). */
    metrics?: EngineMetrics;
  },
): () => Promise<BackendReadiness> {
  let last: { at: number; result: Promise<BackendReadiness> } | undefined;
  const probe = async (): Promise<BackendReadiness> => {
    const checks: Record<string, unknown> = {};
    let ready = true;
    if (backends.clamav) {
      try {
        await backends.clamav.client.ping({ deadline: Date.now() + 2_000 });
        const version = await backends.clamav.version();
        const ageSeconds =
          version.databaseDate && Number.isFinite(Date.parse(version.databaseDate))
            ? Math.max(0, Math.round((Date.now() - Date.parse(version.databaseDate)) / 1000))
            : undefined;
        if (ageSeconds !== undefined)
          options.metrics?.signaturesAge.set({ backend: "clamav" }, ageSeconds);
        // Only an official database has a date; the shipped test signatures are warned about at start.
        const stale = ageSeconds !== undefined && ageSeconds > options.maxDatabaseAgeHours * 3600;
        ready &&= !stale;
        checks.clamav = {
          ok: !stale,
          engine: version.engineVersion,
          database: version.databaseVersion ?? "custom",
          ...(ageSeconds === undefined
            ? {}
            : {
                databaseDate: version.databaseDate,
                databaseAgeHours: Math.round(ageSeconds / 3600),
                maxDatabaseAgeHours: options.maxDatabaseAgeHours,
              }),
          ...(stale
            ? {
                problem: `the database is older than CLAMAV_MAX_DATABASE_AGE_HOURS (${options.maxDatabaseAgeHours}): run freshclam`,
              }
            : {}),
          connections: backends.clamav.client.usage,
          // A pool's daemons by position (clamd-1, ...): their addresses stay in the logs.
          ...("hosts" in backends.clamav.client
            ? {
                hosts: backends.clamav.client
                  .hosts()
                  .map(({ endpoint: _endpoint, ...state }, index) => ({
                    daemon: `clamd-${index + 1}`,
                    ...state,
                  })),
              }
            : {}),
        };
      } catch (error) {
        ready = false;
        checks.clamav = { ok: false, ...publicError(error) };
      }
    }
    if (backends.yara) {
      const status = backends.yara.status();
      const ok = status.ready && backends.yara.ruleFileCount > 0;
      ready &&= ok;
      const loadedAgeSeconds =
        backends.rulesLoadedAt === undefined
          ? undefined
          : Math.round((Date.now() - backends.rulesLoadedAt) / 1000);
      if (loadedAgeSeconds !== undefined)
        options.metrics?.signaturesAge.set({ backend: "yara" }, loadedAgeSeconds);
      checks.yara = {
        ok,
        engine: backends.yara.engine,
        vendorVersion: backends.yara.vendorVersion,
        ruleFiles: backends.yara.ruleFileCount,
        rules: backends.yara.signaturesVersion,
        ...(loadedAgeSeconds === undefined ? {} : { rulesLoadedAgeSeconds: loadedAgeSeconds }),
        workers: status.workers,
        busy: status.busy,
        queued: status.queued,
        maxQueued: status.maxQueued,
        ...(status.lastFailure ? { problem: "no worker could start; retrying" } : {}),
      };
    }
    for (const module of backends.modules) {
      // A third-party backend has no health probe in the contract: it is there, and its
      // failures show as unknown answers and in engine_scan_errors_total{backend}.
      checks[module.name] = { ok: true, kind: "module", probe: "none" };
    }
    return { ready, checks };
  };
  return () => {
    if (!last || Date.now() - last.at > probeReuseMs) last = { at: Date.now(), result: probe() };
    return last.result;
  };
}
