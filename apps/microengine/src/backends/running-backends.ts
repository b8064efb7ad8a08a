import type { Logger } from "pino";
import {
  backendNames,
  ConfigError,
  type EngineConfig,
  isBackendModuleEntry,
} from "../config/config.js";
import { policyMismatch } from "../config/verdict-policy-setting.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { BackendBuildContext, BackendStatus, EngineBackend } from "./backend-kind.js";
import { backendTable } from "./backend-table.js";
import { buildModuleBackend } from "./third-party/third-party-backend.js";

/** ENGINE_BACKENDS when it is unset: YARA, plus ClamAV when it can run. */
const defaultBackendEntries = ["yara", "clamav"];

/** The backends that started, and the start banner's lines. */
export interface RunningBackends {
  /** The running backends, in the multi-engine's order. */
  running: EngineBackend[];
  /** The start banner's lines: the running backends' and why the others do not run. */
  statuses: BackendStatus[];
}

/**
 * Starts the backends: one entry of {@link backendTable} per backend name, then
 * ENGINE_BACKENDS' module entries, each named after its scanner, which no other backend may
 * have. Throws when none could start or VERDICT_POLICY names a backend that does not run;
 * whatever fails, the backends that had started are released first.
 * @param options.verifyClamdAlerts refuse a clamd of the operator's that answers OK for what it cannot inspect. Default true
 */
export async function startBackends(
  config: EngineConfig,
  logger: Logger,
  options: { verifyClamdAlerts?: boolean | undefined; metrics?: EngineMetrics | undefined },
): Promise<RunningBackends> {
  const context: BackendBuildContext = {
    config,
    logger,
    explicit: config.ENGINE_BACKENDS !== undefined,
    verifyClamdAlerts: options.verifyClamdAlerts ?? true,
    metrics: options.metrics,
  };
  const entries = config.ENGINE_BACKENDS ?? defaultBackendEntries;
  const started: RunningBackends = { running: [], statuses: [] };
  try {
    await startNamedBackends(context, entries, started);
    await startModuleBackends(config, entries, started);
    const { running } = started;
    if (running.length === 0) throw new Error("no backend could start; see the reasons above");
    const mismatch = policyMismatch(
      config.VERDICT_POLICY.text,
      running.map((backend) => backend.name),
    );
    if (mismatch) throw new ConfigError([`VERDICT_POLICY: ${mismatch}`]);
  } catch (error) {
    await releaseBackends(started.running);
    throw error;
  }
  return started;
}

/** On a failed start: closes the scanners and releases what the backends hold. */
export async function releaseBackends(running: readonly EngineBackend[]): Promise<void> {
  await Promise.allSettled(running.map((backend) => backend.scanner.close?.()));
  await Promise.allSettled(running.map((backend) => backend.release?.()));
}

/** Builds each kind of {@link backendTable}, wanted when ENGINE_BACKENDS (or its default) names it. */
async function startNamedBackends(
  context: BackendBuildContext,
  entries: readonly string[],
  started: RunningBackends,
): Promise<void> {
  const wanted = new Set<string>(entries.filter((entry) => !isBackendModuleEntry(entry)));
  for (const [name, kind] of Object.entries(backendTable)) {
    const { backend, status } = await kind.build(wanted.has(name), context);
    if (backend) add(started, backend);
    else if (status) started.statuses.push(status);
  }
}

/** Loads ENGINE_BACKENDS' module entries, in their order, after the backends of the table. */
async function startModuleBackends(
  config: EngineConfig,
  entries: readonly string[],
  started: RunningBackends,
): Promise<void> {
  const taken = new Set<string>([
    ...backendNames,
    ...started.running.map((backend) => backend.name),
  ]);
  for (const entry of entries.filter(isBackendModuleEntry)) {
    const backend = await buildModuleBackend(entry, taken, config);
    taken.add(backend.name);
    add(started, backend);
  }
}

function add(started: RunningBackends, backend: EngineBackend): void {
  started.running.push(backend);
  started.statuses.push(backend.status);
}
