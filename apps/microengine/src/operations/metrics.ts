import type { ScanResult } from "@engine/core";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** The engine's Prometheus metrics, in their own registry. */
export interface EngineMetrics {
  registry: Registry;
  scans: Counter<"backend" | "verdict">;
  scanDuration: Histogram<"backend">;
  scanErrors: Counter<"backend" | "code">;
  inFlight: Gauge;
  bounties: Counter<"phase" | "outcome">;
  answeredLate: Counter;
  dropped: Counter;
  bountiesWaiting: Gauge;
  bountiesRunning: Gauge;
  overloaded: Counter<"action">;
  queueJobs: Gauge<"state">;
  queueWorkers: Gauge<"queue">;
  queueWaitSeconds: Histogram;
  queueEvents: Counter<"event">;
  redisRejected: Counter<"kind">;
  cacheHits: Counter;
  cacheMisses: Counter;
  rulesReloadFailures: Counter<"backend">;
  signaturesReloads: Counter<"backend">;
  signaturesAge: Gauge<"backend">;
  httpConnectionsEvicted: Counter<"reason">;
  httpConnectionsRefused: Counter;
  unpackMembers: Counter<"backend">;
  unpackBytes: Counter<"backend">;
  unpackSkipped: Counter<"backend" | "code" | "limit">;
}

/**
 * Creates the metrics: scans by backend and verdict, durations, errors by code, in-flight,
 * bounties answered late or dropped (which must stay 0), and the bounds' saturation (bounties
 * waiting and running, work turned away).
 */
export function createMetrics(): EngineMetrics {
  const registry = new Registry();
  // Process and runtime metrics (CPU, memory, event-loop lag, GC, handles), prefixed nodejs_/process_.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const makers = metricMakers(registry);
  // Registered in this order, which is the order /metrics lists them in.
  return {
    registry,
    ...storedStateMetrics(makers),
    ...scanMetrics(makers),
    ...unpackMetrics(makers),
    ...bountyMetrics(makers),
    ...queueMetrics(makers),
    ...loadMetrics(makers),
  };
}

/** One call per metric, each registered in the engine's registry. */
function metricMakers(registry: Registry) {
  const registers = [registry];
  return {
    counter: <Label extends string = string>(
      name: string,
      help: string,
      labelNames: readonly Label[] = [],
    ) => new Counter<Label>({ name, help, labelNames, registers }),
    gauge: <Label extends string = string>(
      name: string,
      help: string,
      labelNames: readonly Label[] = [],
    ) => new Gauge<Label>({ name, help, labelNames, registers }),
    histogram: <Label extends string = string>(
      name: string,
      help: string,
      buckets: number[] | undefined,
      labelNames: readonly Label[] = [],
    ) =>
      new Histogram<Label>({ name, help, labelNames, registers, ...(buckets ? { buckets } : {}) }),
  };
}

/** The makers a group of metrics is built with. */
type MetricMakers = ReturnType<typeof metricMakers>;

/**
 * What the engine reads back and reloads: Redis entries that fail QUEUE_SECRET's check, the
 * result cache, rules and signatures.
 */
function storedStateMetrics({
  counter,
  gauge,
}: MetricMakers): Pick<
  EngineMetrics,
  | "redisRejected"
  | "cacheHits"
  | "cacheMisses"
  | "rulesReloadFailures"
  | "signaturesReloads"
  | "signaturesAge"
> {
  return {
    redisRejected: counter(
      "engine_redis_entries_rejected_total",
      "Values read back from Redis that did not verify under QUEUE_SECRET (forged or corrupt) and were ignored, by kind (bounty-job, deadline-job, answer, result)",
      ["kind"],
    ),
    cacheHits: counter("engine_cache_hits_total", "Scans answered from the result cache"),
    cacheMisses: counter(
      "engine_cache_misses_total",
      "Scans the result cache did not have (scanned, then stored when conclusive)",
    ),
    rulesReloadFailures: counter(
      "engine_rules_reload_failures_total",
      "Reloads of rules or signatures that failed (the last good ones stay)",
      ["backend"],
    ),
    signaturesReloads: counter(
      "engine_signatures_reloads_total",
      "Reloads of rules or signatures that succeeded",
      ["backend"],
    ),
    signaturesAge: gauge(
      "engine_signatures_age_seconds",
      "Age of the signatures in use: ClamAV's database date, YARA's last (re)load",
      ["backend"],
    ),
  };
}

/** Scans by backend and verdict, their durations, errors by code, and those running now. */
function scanMetrics({
  counter,
  gauge,
  histogram,
}: MetricMakers): Pick<EngineMetrics, "scans" | "scanDuration" | "scanErrors" | "inFlight"> {
  return {
    scans: counter("engine_scans_total", "Scans by backend and verdict", ["backend", "verdict"]),
    scanDuration: histogram(
      "engine_scan_duration_seconds",
      "Scan duration by backend",
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
      ["backend"],
    ),
    scanErrors: counter("engine_scan_errors_total", "Backend errors by code", ["backend", "code"]),
    inFlight: gauge("engine_scans_in_flight", "Scans running now"),
  };
}

/**
 * Inside containers (UNPACK), per backend: members scanned, the bytes they decoded to, and
 * what was not looked into by `SKIPPED:*` code and, for LIMITS, which limit.
 */
function unpackMetrics({
  counter,
}: MetricMakers): Pick<EngineMetrics, "unpackMembers" | "unpackBytes" | "unpackSkipped"> {
  return {
    unpackMembers: counter(
      "engine_unpack_members_total",
      "Members of containers scanned (UNPACK), by backend",
      ["backend"],
    ),
    unpackBytes: counter(
      "engine_unpack_bytes_total",
      "Bytes the members of containers decoded to (UNPACK), by backend",
      ["backend"],
    ),
    unpackSkipped: counter(
      "engine_unpack_skipped_total",
      "What inside containers was not looked into (the answer is unknown), by backend, code (ENCRYPTED, LIMITS, UNSUPPORTED, CORRUPT; UNLISTED past the 20 an answer lists) and limit (maxDepth, maxMembers, maxMemberBytes, maxTotalBytes, maxRatio, overlappingEntries; empty for other codes)",
      ["backend", "code", "limit"],
    ),
  };
}

/** Bounties by phase and outcome, those answered late or dropped (must stay 0), waiting and running. */
function bountyMetrics({
  counter,
  gauge,
}: MetricMakers): Pick<
  EngineMetrics,
  "bounties" | "answeredLate" | "dropped" | "bountiesWaiting" | "bountiesRunning"
> {
  return {
    bounties: counter("engine_bounties_total", "Bounties by phase and outcome", [
      "phase",
      "outcome",
    ]),
    answeredLate: counter(
      "engine_bounties_answered_late_total",
      "Answers delivered after expiration (must stay 0)",
    ),
    dropped: counter("engine_bounties_dropped_total", "Bounties never answered (must stay 0)"),
    bountiesWaiting: gauge(
      "engine_bounties_waiting",
      "Bounties waiting for a slot (at most BOUNTY_BACKLOG)",
    ),
    bountiesRunning: gauge(
      "engine_bounties_running",
      "Bounties downloading or scanning now (at most BOUNTY_CONCURRENCY)",
    ),
  };
}

/** Queue mode: jobs by state, time waited in the queue, and queue events. */
function queueMetrics({
  counter,
  gauge,
  histogram,
}: MetricMakers): Pick<
  EngineMetrics,
  "queueJobs" | "queueWorkers" | "queueWaitSeconds" | "queueEvents"
> {
  return {
    queueWorkers: gauge(
      "engine_queue_workers",
      "Queue mode (serve): workers connected to the queue, read from Redis every second",
      ["queue"],
    ),
    queueJobs: gauge(
      "engine_queue_jobs",
      "Queue mode: jobs by state (waiting, active, delayed, failed), read from Redis",
      ["state"],
    ),
    queueWaitSeconds: histogram(
      "engine_queue_wait_seconds",
      "Queue mode: time a bounty waited in the queue before a worker took it",
      [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
    ),
    queueEvents: counter(
      "engine_queue_events_total",
      "Queue mode: stalled (a worker died or lost its lock), retried, dead_lettered (failed for good), answered_by_watcher (no answer by the deadline), expired (taken after expiration)",
      ["event"],
    ),
  };
}

/**
 * Work turned away at the bounds: connections evicted or refused at HTTP_MAX_CONNECTIONS,
 * bounties and scans refused or answered unknown.
 */
function loadMetrics({
  counter,
}: MetricMakers): Pick<
  EngineMetrics,
  "httpConnectionsEvicted" | "httpConnectionsRefused" | "overloaded"
> {
  return {
    httpConnectionsEvicted: counter(
      "engine_http_connections_evicted_total",
      "Connections closed at HTTP_MAX_CONNECTIONS to make room for a new one: idle (keep-alive, nothing in flight), slow (still sending its request, or not reading its response)",
      ["reason"],
    ),
    httpConnectionsRefused: counter(
      "engine_http_connections_refused_total",
      "New connections closed at HTTP_MAX_CONNECTIONS because every open one was handling a request",
    ),
    overloaded: counter(
      "engine_overloaded_total",
      "Work turned away by the bounds: answered_unknown (SKIPPED:OVERLOADED), refused_503 (webhook or /scan)",
      ["action"],
    ),
  };
}

/** Records a finished scan in the metrics, per backend from the provenance. */
export function recordScan(metrics: EngineMetrics, result: ScanResult): void {
  // A cached answer ran no backend now (engine_cache_hits_total counts it).
  if ((result.metadata.cache as { hit?: unknown } | undefined)?.hit === true) return;
  for (const backend of result.metadata.backends ?? []) {
    metrics.scans.inc({ backend: backend.name, verdict: backend.verdict });
    metrics.scanDuration.observe({ backend: backend.name }, backend.duration_ms / 1000);
    if (backend.error_code)
      metrics.scanErrors.inc({ backend: backend.name, code: backend.error_code });
    const unpack = backend.metadata?.unpack;
    if (typeof unpack === "object" && unpack !== null)
      recordUnpack(metrics, backend.name, unpack as UnpackCounts);
  }
}

/** What the metrics read of a backend's `metadata.unpack` (`@engine/unpack`'s report). */
interface UnpackCounts {
  members?: unknown;
  bytes?: unknown;
  skipped?: unknown;
  skipped_count?: unknown;
  skipped_by_code?: unknown;
}

/** The limits a LIMITS skip can name (its reason names the one it hit). */
const limitNames =
  /\b(maxDepth|maxMembers|maxMemberBytes|maxTotalBytes|maxRatio|overlappingEntries)\b/;

/** Counts one backend's unpack report: members, bytes, and each skip by code and limit. */
function recordUnpack(metrics: EngineMetrics, backend: string, unpack: UnpackCounts): void {
  const count = (value: unknown) =>
    typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
  if (count(unpack.members)) metrics.unpackMembers.inc({ backend }, count(unpack.members));
  if (count(unpack.bytes)) metrics.unpackBytes.inc({ backend }, count(unpack.bytes));
  const listed = Array.isArray(unpack.skipped) ? unpack.skipped : [];
  const listedByCode = new Map<string, number>();
  for (const skip of listed) {
    const { code, reason, limit } = (skip ?? {}) as Record<string, unknown>;
    if (typeof code !== "string") continue;
    listedByCode.set(code, (listedByCode.get(code) ?? 0) + 1);
    const named =
      typeof limit === "string"
        ? limit
        : limitNames.exec(typeof reason === "string" ? reason : "")?.[1];
    metrics.unpackSkipped.inc({
      backend,
      code: code.replace(/^SKIPPED:/, ""),
      limit: code === "SKIPPED:LIMITS" ? (named ?? "") : "",
    });
  }
  recordUnlistedSkips(metrics, backend, unpack, listedByCode, listed.length);
}

/**
 * The skips past the first 20 the report describes: by code from its `skipped_by_code` (their
 * limit unknown), or as `UNLISTED` from `skipped_count` for a report without it.
 */
function recordUnlistedSkips(
  metrics: EngineMetrics,
  backend: string,
  unpack: UnpackCounts,
  listedByCode: ReadonlyMap<string, number>,
  listedCount: number,
): void {
  const count = (value: unknown) =>
    typeof value === "number" && Number.isFinite(value) && value > 0 ? value : 0;
  const byCode = unpack.skipped_by_code;
  if (byCode !== null && typeof byCode === "object" && !Array.isArray(byCode)) {
    for (const [code, total] of Object.entries(byCode)) {
      const unlisted = count(total) - (listedByCode.get(code) ?? 0);
      if (!/^SKIPPED:[A-Z]+$/.test(code) || unlisted <= 0) continue;
      metrics.unpackSkipped.inc(
        { backend, code: code.slice("SKIPPED:".length), limit: "" },
        unlisted,
      );
    }
    return;
  }
  const unlisted = count(unpack.skipped_count) - listedCount;
  if (unlisted > 0) metrics.unpackSkipped.inc({ backend, code: "UNLISTED", limit: "" }, unlisted);
}
