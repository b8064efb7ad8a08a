import type { SimulatedBounty } from "./simulated-bounty.js";

/**
 * Writes the simulation's table (one line per bounty) and its outcome to `out`; returns the
 * exit code: 0 when every bounty was answered correctly, 1 when not.
 */
export function writeSimulationReport(
  results: readonly SimulatedBounty[],
  out: NodeJS.WritableStream,
): 0 | 1 {
  out.write("artifact        phase        verdict     bid                      latency  result\n");
  for (const result of results) {
    out.write(
      `${result.artifact.padEnd(15)} ${result.phase.padEnd(12)} ${String(result.verdict ?? "-").padEnd(11)} ${String(result.bid ?? "-").padEnd(24)} ${result.latencyMs === undefined ? "-" : `${result.latencyMs} ms`.padEnd(8)} ${result.status === "ok" ? "ok" : `FAILED: ${result.problems.join("; ")}`}\n`,
    );
  }
  const failed = results.filter((result) => result.status !== "ok").length;
  out.write(
    failed === 0
      ? `simulation passed: ${results.length} bounties answered correctly\n`
      : `simulation FAILED: ${failed} of ${results.length}\n`,
  );
  return failed === 0 ? 0 : 1;
}
