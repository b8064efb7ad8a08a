import type { Logger } from "pino";
import type { BackendStatus, EngineBackends } from "../backends/build-backends.js";

/** The backend lines every command prints first: what runs, its version, its signatures, and warnings. */
export function backendBanner(statuses: readonly BackendStatus[]): string {
  return statuses
    .map(
      (status) =>
        `  ${status.name.padEnd(8)} ${status.running ? "on " : "off"}  ${status.reason}\n${status.warning ? `  ${"".padEnd(8)} WARNING: ${status.warning}\n` : ""}`,
    )
    .join("");
}

/**
 * The start banner of serve and worker, as log lines: which backends run, and why the others
 * do not. A backend that is off for a reason other than ENGINE_BACKENDS leaving it out (no
 * clamd) is a warning, as is each backend's own warning (test signatures only, and why).
 */
export function logBackendStatuses(
  backends: Pick<EngineBackends, "statuses" | "cache">,
  logger: Logger,
): void {
  for (const status of backends.statuses) {
    const line = `${status.name}: ${status.running ? "on" : "off"} (${status.reason})`;
    const fields = { backend: status.name, running: status.running };
    if (status.running || status.leftOut) logger.info(fields, line);
    else logger.warn(fields, line);
    if (status.warning) logger.warn({ backend: status.name }, status.warning);
  }
  logger.info(
    { cache: backends.cache },
    backends.cache === "off"
      ? "result cache: off"
      : `result cache: ${backends.cache}${backends.cache === "memory" ? "" : " (shared by every worker)"}`,
  );
}
