import { artifactFromBytes, eicarBytes, type ScanResult } from "@engine/core";
import type { Command } from "commander";
import type { EngineBackends } from "../backends/build-backends.js";
import { engineCoverage } from "../backends/signature-coverage.js";
import { type SignatureCoverage, testSignaturesNote } from "../protocol/coverage.js";
import { backendBanner } from "./backend-banner.js";
import { checkArchives } from "./check-archives.js";
import { type CommandFlags, withEngineOptions } from "./command-flags.js";
import { withBackends } from "./one-shot-backends.js";

/** Adds `microengine check`: the self-test; exit code 0 when healthy, 1 when not. */
export function addCheckCommand(program: Command): void {
  withEngineOptions(
    program
      .command("check")
      .description(
        "self-test: EICAR malicious (alone and in an archive), empty and benign files benign; versions",
      ),
  ).action(async (flags: CommandFlags) => {
    // check runs the clamd alert probes itself and reports them instead of refusing to start.
    await withBackends(
      flags,
      async (backends) => {
        process.exitCode = (await checkEngine(backends, process.stdout)) ? 0 : 1;
      },
      { verifyClamdAlerts: false },
    );
  });
}

/**
 * The engine's self-test, like the SDK's --check-eicar/--check-empty: EICAR must be malicious,
 * an empty and a benign file benign; with UNPACK, EICAR inside a tar.gz malicious by every
 * backend that sees inside containers, and a benign archive benign. Then each backend's own checks: ClamAV probes clamd with
 * an encrypted zip of EICAR and a nest past its limits, and fails naming the clamd.conf setting
 * when clamd answers OK; a third-party backend must pass the conformance checks that apply to
 * it. Prints each backend's version and rules/database version. Ends with `engine healthy`,
 * or, when every backend has test signatures only, `engine working, test signatures only:
 * benign answers bid the minimum` (still a success), or `engine NOT healthy`.
 * Resolves true when the engine works.
 */
export async function checkEngine(
  backends: EngineBackends,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  let healthy = true;
  out.write(backendBanner(backends.statuses));
  const cases: Array<[string, Uint8Array, ScanResult["verdict"]]> = [
    ["EICAR", eicarBytes(), "malicious"],
    ["empty file", new Uint8Array(0), "benign"],
    ["benign file", Buffer.from("A benign text file for the engine's self-test.\n"), "benign"],
  ];
  for (const [label, bytes, expected] of cases)
    healthy = (await checkCase(backends, out, label, bytes, expected)) && healthy;
  // Inside containers: EICAR in an archive malicious by every backend that unpacks.
  healthy = (await checkArchives(backends, out)) && healthy;
  // Each backend's own checks: clamd's alert probes, a third-party module's conformance.
  for (const backend of backends.running)
    if (backend.selfCheck) healthy = (await backend.selfCheck(out)) && healthy;
  out.write(`${verdictLine(healthy, engineCoverage(backends.running))}\n`);
  return healthy;
}

/** check's last line: healthy, working with test signatures only, or not healthy. */
export function verdictLine(healthy: boolean, coverage: SignatureCoverage): string {
  if (!healthy) return "engine NOT healthy";
  return coverage === "test-signatures"
    ? `engine working, ${testSignaturesNote}`
    : "engine healthy";
}

/**
 * Scans `bytes` and prints PASS or FAIL with each backend's verdict (after EICAR, each
 * backend's version and signatures). Resolves true when the verdict is `expected`.
 */
async function checkCase(
  backends: Pick<EngineBackends, "scanner">,
  out: NodeJS.WritableStream,
  label: string,
  bytes: Uint8Array,
  expected: ScanResult["verdict"],
): Promise<boolean> {
  try {
    const result = await backends.scanner.scan(artifactFromBytes(bytes), {
      deadline: Date.now() + 30_000,
    });
    const ok = result.verdict === expected;
    const perBackend = (result.metadata.backends ?? [])
      .map(
        (backend) =>
          `${backend.name}=${backend.verdict}${backend.error_code ? `(${backend.error_code})` : ""}`,
      )
      .join(" ");
    out.write(
      `${ok ? "PASS" : "FAIL"} ${label}: ${result.verdict} (expected ${expected}) ${perBackend}\n`,
    );
    if (label === "EICAR") {
      for (const backend of result.metadata.backends ?? []) {
        const scanner = (backend.metadata?.scanner ?? {}) as Record<string, unknown>;
        out.write(
          `     ${backend.name}: version ${String(scanner.vendor_version ?? "?")}, signatures ${String(scanner.signatures_version ?? "?")}\n`,
        );
      }
    }
    return ok;
  } catch (error) {
    out.write(`FAIL ${label}: ${(error as Error).message}\n`);
    return false;
  }
}
