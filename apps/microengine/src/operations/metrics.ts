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
  // Registered in this order, which is the order /metrics lists them in.
  return {
    registry,
    ...storedStateMetrics(registry),
    ...scanMetrics(registry),
    ...bountyMetrics(registry),
    ...queueMetrics(registry),
    ...loadMetrics(registry),
  };
}

/**
 * What the engine reads back and reloads: Redis entries that fail QUEUE_SECRET's check, the
 * result cache, rules and signatures.
 */
function storedStateMetrics(
  registry: Registry,
): Pick<
  EngineMetrics,
  | "redisRejected"
  | "cacheHits"
  | "cacheMisses"
  | "rulesReloadFailures"
  | "signaturesReloads"
  | "signaturesAge"
> {
  return {
    redisRejected: new Counter({
      name: "engine_redis_entries_rejected_total",
      help: "Values read back from Redis that did not verify under QUEUE_SECRET (forged or corrupt) and were ignored, by kind (bounty-job, deadline-job, answer, result)",
      labelNames: ["kind"],
      registers: [registry],
    }),
    cacheHits: new Counter({
      name: "engine_cache_hits_total",
      help: "Scans answered from the result cache",
      registers: [registry],
    }),
    cacheMisses: new Counter({
      name: "engine_cache_misses_total",
      help: "Scans the result cache did not have (scanned, then stored when conclusive)",
      registers: [registry],
    }),
    rulesReloadFailures: new Counter({
      name: "engine_rules_reload_failures_total",
      help: "Reloads of rules or signatures that failed (the last good ones stay)",
      labelNames: ["backend"],
      registers: [registry],
    }),
    signaturesReloads: new Counter({
      name: "engine_signatures_reloads_total",
      help: "Reloads of rules or signatures that succeeded",
      labelNames: ["backend"],
      registers: [registry],
    }),
    signaturesAge: new Gauge({
      name: "engine_signatures_age_seconds",
      help: "Age of the signatures in use: ClamAV's database date, YARA's last (re)load",
      labelNames: ["backend"],
      registers: [registry],
    }),
  };
}

/** Scans by backend and verdict, their durations, errors by code, and those running now. */
function scanMetrics(
  registry: Registry,
): Pick<EngineMetrics, "scans" | "scanDuration" | "scanErrors" | "inFlight"> {
  return {
    scans: new Counter({
      name: "engine_scans_total",
      help: "Scans by backend and verdict",
      labelNames: ["backend", "verdict"],
      registers: [registry],
    }),
    scanDuration: new Histogram({
      name: "engine_scan_duration_seconds",
      help: "Scan duration by backend",
      labelNames: ["backend"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60],
      registers: [registry],
    }),
    scanErrors: new Counter({
      name: "engine_scan_errors_total",
      help: "Backend errors by code",
      labelNames: ["backend", "code"],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "engine_scans_in_flight",
      help: "Scans running now",
      registers: [registry],
    }),
  };
}

/** Bounties by phase and outcome, those answered late or dropped (must stay 0), waiting and running. */
function bountyMetrics(
  registry: Registry,
): Pick<
  EngineMetrics,
  "bounties" | "answeredLate" | "dropped" | "bountiesWaiting" | "bountiesRunning"
> {
  return {
    bounties: new Counter({
      name: "engine_bounties_total",
      help: "Bounties by phase and outcome",
      labelNames: ["phase", "outcome"],
      registers: [registry],
    }),
    answeredLate: new Counter({
      name: "engine_bounties_answered_late_total",
      help: "Answers delivered after expiration (must stay 0)",
      registers: [registry],
    }),
    dropped: new Counter({
      name: "engine_bounties_dropped_total",
      help: "Bounties never answered (must stay 0)",
      registers: [registry],
    }),
    bountiesWaiting: new Gauge({
      name: "engine_bounties_waiting",
      help: "Bounties waiting for a slot (at most BOUNTY_BACKLOG)",
      registers: [registry],
    }),
    bountiesRunning: new Gauge({
      name: "engine_bounties_running",
      help: "Bounties downloading or scanning now (at most BOUNTY_CONCURRENCY)",
      registers: [registry],
    }),
  };
}

/** Queue mode: jobs by state, time waited in the queue, and queue events. */
function queueMetrics(
  registry: Registry,
): Pick<EngineMetrics, "queueJobs" | "queueWaitSeconds" | "queueEvents"> {
  return {
    queueJobs: new Gauge({
      name: "engine_queue_jobs",
      help: "Queue mode: jobs by state (waiting, active, delayed, failed), read from Redis",
      labelNames: ["state"],
      registers: [registry],
    }),
    queueWaitSeconds: new Histogram({
      name: "engine_queue_wait_seconds",
      help: "Queue mode: time a bounty waited in the queue before a worker took it",
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
      registers: [registry],
    }),
    queueEvents: new Counter({
      name: "engine_queue_events_total",
      help: "Queue mode: stalled (a worker died or lost its lock), retried, dead_lettered (failed for good), answered_by_watcher (no answer by the deadline), expired (taken after expiration)",
      labelNames: ["event"],
      registers: [registry],
    }),
  };
}

/**
 * Work turned away at the bounds: connections evicted or refused at HTTP_MAX_CONNECTIONS,
 * bounties and scans refused or answered unknown.
 */
function loadMetrics(
  registry: Registry,
): Pick<EngineMetrics, "httpConnectionsEvicted" | "httpConnectionsRefused" | "overloaded"> {
  return {
    httpConnectionsEvicted: new Counter({
      name: "engine_http_connections_evicted_total",
      help: "Connections closed at HTTP_MAX_CONNECTIONS to make room for a new one: idle (keep-alive, nothing in flight), slow (still sending its request, or not reading its response)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    httpConnectionsRefused: new Counter({
      name: "engine_http_connections_refused_total",
      help: "New connections closed at HTTP_MAX_CONNECTIONS because every open one was handling a request",
      registers: [registry],
    }),
    overloaded: new Counter({
      name: "engine_overloaded_total",
      help: "Work turned away by the bounds: answered_unknown (SKIPPED:OVERLOADED), refused_503 (webhook or /scan)",
      labelNames: ["action"],
      registers: [registry],
    }),
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
  }
}
