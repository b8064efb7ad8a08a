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

/** The start banner of serve and worker, as log lines: which backends run, and why the others do not. */
export function logBackendStatuses(
  backends: Pick<EngineBackends, "statuses" | "cache">,
  logger: Logger,
): void {
  for (const status of backends.statuses) {
    logger.info(
      { backend: status.name, running: status.running },
      `${status.name}: ${status.running ? "on" : "off"} (${status.reason})`,
    );
    if (status.warning) logger.warn({ backend: status.name }, status.warning);
  }
  logger.info(
    { cache: backends.cache },
    backends.cache === "off"
      ? "result cache: off"
      : `result cache: ${backends.cache}${backends.cache === "memory" ? "" : " (shared by every worker)"}`,
  );
}
