import type { ClamavScanner } from "@engine/clamav";
import type { EngineMetrics } from "../../operations/metrics.js";
import type { BackendHealth } from "../backend-kind.js";

/** clamd's readiness: PING, its version, the official database's age against CLAMAV_MAX_DATABASE_AGE_HOURS, connections in use. */
export async function clamdHealth(
  clamav: ClamavScanner,
  maxDatabaseAgeHours: number,
  metrics: EngineMetrics | undefined,
): Promise<BackendHealth> {
  await clamav.client.ping({ deadline: Date.now() + 2_000 });
  const version = await clamav.version();
  const ageSeconds =
    version.databaseDate && Number.isFinite(Date.parse(version.databaseDate))
      ? Math.max(0, Math.round((Date.now() - Date.parse(version.databaseDate)) / 1000))
      : undefined;
  if (ageSeconds !== undefined) metrics?.signaturesAge.set({ backend: clamav.name }, ageSeconds);
  // Only an official database has a date; the shipped test signatures are warned about at start.
  const stale = ageSeconds !== undefined && ageSeconds > maxDatabaseAgeHours * 3600;
  // A clamd of the operator's is re-probed for its alert settings after each new connection.
  const alerts = clamav.alertStatus();
  const failingAlerts = alerts?.state === "failing";
  return {
    ok: !stale && !failingAlerts,
    ...(alerts ? { alerts: alerts.state } : {}),
    engine: version.engineVersion,
    database: version.databaseVersion ?? "custom",
    ...(ageSeconds === undefined
      ? {}
      : {
          databaseDate: version.databaseDate,
          databaseAgeHours: Math.round(ageSeconds / 3600),
          maxDatabaseAgeHours,
        }),
    ...healthProblem(failingAlerts, stale, maxDatabaseAgeHours),
    connections: clamav.client.usage,
    // A pool's daemons by position (clamd-1, ...): their addresses stay in the logs.
    ...("hosts" in clamav.client
      ? {
          hosts: clamav.client.hosts().map(({ endpoint: _endpoint, ...state }, index) => ({
            daemon: `clamd-${index + 1}`,
            ...state,
          })),
        }
      : {}),
  };
}

/** What the operator must fix when clamd is not ready: its alerts first, then its database's age. */
function healthProblem(
  failingAlerts: boolean,
  stale: boolean,
  maxDatabaseAgeHours: number,
): { problem?: string } {
  if (failingAlerts)
    return {
      problem:
        "clamd answers OK for an encrypted or too-deep archive (restarted without AlertEncrypted*/AlertExceedsMax?): its clean answers are refused until it is fixed and restarted",
    };
  if (stale)
    return {
      problem: `the database is older than CLAMAV_MAX_DATABASE_AGE_HOURS (${maxDatabaseAgeHours}): run freshclam`,
    };
  return {};
}
