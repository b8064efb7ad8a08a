import { publicError } from "@engine/core";
import type { EngineBackends } from "../backends/build-backends.js";
import { backendsNotStartedNote } from "../backends/lazy-backends.js";

/** What the backends' readiness probe found: ready or not, and each backend's state. */
export interface BackendReadiness {
  ready: boolean;
  checks: Record<string, unknown>;
}

/** How long one probe's answer is reused, in ms. */
const probeReuseMs = 1_000;

/**
 * The backends' readiness, probed at most once a second however many `/readyz` requests come
 * (a flood of them never reaches clamd): each running backend's own `health()` (clamd answers
 * PING, its database is young enough, connections in use; YARA has a worker and rules; a
 * third-party backend is listed). A backend whose probe throws is not ready, with the error's
 * public code and reason only. Each probe also refreshes engine_signatures_age_seconds.
 */
export function createReadinessProbe(
  backends: Pick<EngineBackends, "running"> & {
    readonly started?: boolean;
    readonly startError?: string | undefined;
  },
): () => Promise<BackendReadiness> {
  let last: { at: number; result: Promise<BackendReadiness> } | undefined;
  const probe = async (): Promise<BackendReadiness> => {
    // Queue mode's serve before its first POST /scan: nothing to probe, and ready.
    if (backends.started === false) {
      const failed = backends.startError === undefined ? {} : { lastStart: "failed (see the log)" };
      return {
        ready: true,
        checks: { backends: { ok: true, note: backendsNotStartedNote, ...failed } },
      };
    }
    const results = await Promise.all(
      backends.running.map(async (backend) => {
        try {
          return [backend.name, await backend.health()] as const;
        } catch (error) {
          return [backend.name, { ok: false, ...publicError(error) }] as const;
        }
      }),
    );
    return {
      ready: results.every(([, health]) => health.ok),
      checks: Object.fromEntries(results),
    };
  };
  return () => {
    if (!last || Date.now() - last.at > probeReuseMs) last = { at: Date.now(), result: probe() };
    return last.result;
  };
}
