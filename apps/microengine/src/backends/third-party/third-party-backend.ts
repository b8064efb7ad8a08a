import { ConfigError, type EngineConfig } from "../../config/config.js";
import type { EngineBackend } from "../backend-kind.js";
import { type UnpackSetting, withUnpacking } from "../unpacking-backend.js";
import { checkConformance } from "./module-conformance.js";
import { type BackendModule, BackendModuleError, loadBackendModule } from "./module-loader.js";

/**
 * A third-party backend from an ENGINE_BACKENDS module entry (`./my-scanner.mjs`,
 * `npm:my-scanner`), named after its scanner, which no other backend may have (`taken`).
 * It has no health probe in the contract: `/readyz` lists it, and its failures show as unknown
 * answers and in engine_scan_errors_total{backend}. `check` runs the conformance checks on it
 * (on the module's own scanners). With UNPACK it is given the members of containers too.
 */
export async function buildModuleBackend(
  entry: string,
  taken: ReadonlySet<string>,
  config: Pick<EngineConfig, UnpackSetting>,
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
  return withUnpacking(
    {
      name: module.name,
      scanner: module.scanner,
      status: { name: module.name, running: true, reason: `third-party module ${entry}` },
      health: async () => ({ ok: true, kind: "module", probe: "none" }),
      selfCheck: (out) => checkConformance(module, out),
      release: () => module.dispose(),
    },
    config,
  );
}
