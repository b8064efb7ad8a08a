import { enabledChecks } from "@engine/core/conformance";
import { ConfigError } from "../config/config.js";
import { errorMessage } from "../operations/error-message.js";
import type { EngineBackend } from "./backend-kind.js";
import {
  type BackendModule,
  BackendModuleError,
  loadBackendModule,
  within,
} from "./module-loader.js";

/**
 * Runs the conformance checks that apply to a third-party backend (those its module's
 * `conformance` export's `capabilities` and `groups` leave on; `unreachable` only with its
 * `createUnreachableScanner`, `large` only when its `groups` turn it on),
 * each on a fresh scanner from its factory, each bounded by `checkTimeoutMs` (default 60 s).
 * Prints one PASS/FAIL/SKIP line per check; resolves true when none failed.
 */
export async function checkConformance(
  module: BackendModule,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const options = module.conformance;
  const limitMs = options.checkTimeoutMs ?? 60_000;
  let passed = true;
  for (const { check, enabled, skipReason } of enabledChecks(options)) {
    const label = `${module.name} conformance ${check.group}: ${check.name}`;
    if (!enabled) {
      out.write(`SKIP ${label} (${skipReason})\n`);
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
      const message = errorMessage(error).replace(/\s*\n\s*/g, " ");
      out.write(`FAIL ${label}: ${message}\n`);
    }
  }
  return passed;
}

/**
 * A third-party backend from an ENGINE_BACKENDS module entry (`./my-scanner.mjs`,
 * `npm:my-scanner`), named after its scanner, which no other backend may have (`taken`).
 * It has no health probe in the contract: `/readyz` lists it, and its failures show as unknown
 * answers and in engine_scan_errors_total{backend}. `check` runs the conformance checks on it.
 */
export async function buildModuleBackend(
  entry: string,
  taken: ReadonlySet<string>,
): Promise<EngineBackend> {
  let module: BackendModule;
  try {
    module = await loadBackendModule(entry);
  } catch (error) {
    if (error instanceof BackendModuleError) throw new ConfigError([error.message]);
    throw error;
  }
  if (taken.has(module.name)) {
    await module.dispose();
    throw new ConfigError([
      `ENGINE_BACKENDS entry ${JSON.stringify(entry)}: its scanner is named ${JSON.stringify(module.name)}, which another backend has; give it its own name`,
    ]);
  }
  return {
    name: module.name,
    scanner: module.scanner,
    status: { name: module.name, running: true, reason: `third-party module ${entry}` },
    health: async () => ({ ok: true, kind: "module", probe: "none" }),
    selfCheck: (out) => checkConformance(module, out),
    release: () => module.dispose(),
  };
}
