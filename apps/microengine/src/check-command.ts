import { checkClamdAlerts } from "@engine/clamav";
import { artifactFromBytes, eicarBytes, type ScanResult } from "@engine/core";
import { enabledChecks } from "@engine/core/conformance";
import { type BackendModule, within } from "./backend-module.js";
import type { EngineBackends } from "./engine-backends.js";
import { backendBanner } from "./scan-command.js";

/**
 * The engine's self-test, like the SDK's --check-eicar/--check-empty: EICAR must be malicious,
 * an empty and a benign file benign. With ClamAV, it also probes clamd with an encrypted zip of
 * EICAR and a nest past its limits, and fails naming the clamd.conf setting when clamd answers
 * OK. Prints each backend's version and rules/database version.
 * Resolves true when the engine is healthy.
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
  for (const [label, bytes, expected] of cases) {
    try {
      const result = await backends.scanner.scan(artifactFromBytes(bytes), {
        deadline: Date.now() + 30_000,
      });
      const ok = result.verdict === expected;
      healthy &&= ok;
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
    } catch (error) {
      healthy = false;
      out.write(`FAIL ${label}: ${(error as Error).message}\n`);
    }
  }
  if (backends.clamav) {
    // What clamd cannot look inside must not come back OK (a clamd of yours may lack the settings).
    const client = backends.clamav.client;
    const clients = "clients" in client ? client.clients : [client];
    const probes = (
      await Promise.all(
        clients.map((each) => checkClamdAlerts(each, { deadline: Date.now() + 30_000 })),
      )
    ).flat();
    for (const probe of probes) {
      healthy &&= probe.passed;
      const what =
        probe.probe === "encrypted-archive"
          ? "a password-protected zip of EICAR"
          : "EICAR nested 40 zips deep";
      out.write(
        probe.passed
          ? `PASS clamav reports ${what}: ${probe.answer}\n`
          : `FAIL clamav answers ${probe.answer} for ${what}, so such files would pass as clean: ${probe.fix}\n`,
      );
    }
  }
  for (const module of backends.modules) healthy = (await checkConformance(module, out)) && healthy;
  out.write(healthy ? "engine healthy\n" : "engine NOT healthy\n");
  return healthy;
}

/**
 * Runs the conformance checks that apply to a third-party backend (those its module's
 * `conformance` export leaves on; `unreachable` only with its `createUnreachableScanner`),
 * each on a fresh scanner from its factory, each bounded by `checkTimeoutMs` (default 60 s).
 * Prints one PASS/FAIL/SKIP line per check; resolves true when none failed.
 */
async function checkConformance(
  module: BackendModule,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const options = module.conformance;
  const limitMs = options.checkTimeoutMs ?? 60_000;
  let passed = true;
  for (const { check, enabled } of enabledChecks(options)) {
    const label = `${module.name} conformance ${check.group}: ${check.name}`;
    if (!enabled) {
      out.write(`SKIP ${label}\n`);
      continue;
    }
    try {
      await within(
        check.run({ createScanner: () => module.createScanner(), options }),
        limitMs,
        `did not finish within ${limitMs} ms`,
      );
      out.write(`PASS ${label}\n`);
    } catch (error) {
      passed = false;
      // One line per check: zod's messages put the path on a line of its own.
      const message = ((error as Error)?.message ?? String(error)).replace(/\s*\n\s*/g, " ");
      out.write(`FAIL ${label}: ${message}\n`);
    }
  }
  return passed;
}
