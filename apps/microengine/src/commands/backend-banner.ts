import type { BackendStatus } from "../backends/build-backends.js";

/** The backend lines every command prints first: what runs, its version, its signatures, and warnings. */
export function backendBanner(statuses: readonly BackendStatus[]): string {
  return statuses
    .map(
      (status) =>
        `  ${status.name.padEnd(8)} ${status.running ? "on " : "off"}  ${status.reason}\n${status.warning ? `  ${"".padEnd(8)} WARNING: ${status.warning}\n` : ""}`,
    )
    .join("");
}
