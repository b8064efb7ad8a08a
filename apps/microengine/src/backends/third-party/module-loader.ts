import type { Scanner } from "@engine/core";
import type { ConformanceOptions } from "@engine/core/conformance";
import { conformanceOptions } from "./module-conformance.js";
import { readModuleExports } from "./module-exports.js";
import { importBackendModule } from "./module-import.js";
import { ModuleScanners } from "./module-scanners.js";

export { BackendModuleError } from "./backend-module-error.js";

/**
 * A third-party backend named in ENGINE_BACKENDS (`./my-scanner.mjs`, `npm:my-scanner`): a module
 * that exports `createScanner()` returning a scanner of the `@engine/core` contract. A plain
 * object is enough (`name`, `scan(artifact, options)`, `Symbol.asyncDispose`); the engine wraps
 * it so that its results are validated, its deadline and abort are enforced and its failures
 * become typed errors, as for the engine's own backends.
 */
export interface BackendModule {
  /** The ENGINE_BACKENDS entry, as written. */
  entry: string;
  /** The scanner's name (from its `name`), unique among the engine's backends. */
  name: string;
  /** The scanner the engine runs: the module's, wrapped in the contract. */
  scanner: Scanner;
  /** A fresh wrapped scanner from the module's factory (for the conformance checks). */
  createScanner(): Promise<Scanner>;
  /** The conformance options the module exports (`conformance`), merged over the defaults. */
  conformance: ConformanceOptions;
  /** Disposes every scanner the module's factory made (the running one included). */
  dispose(): Promise<void>;
}

/** How long a module may take to import and build its scanner, and its scanner to set up, in ms. */
export const backendModuleStartMs = 30_000;
/** How long a module's scanner may take to close, in ms: shutdown never waits for ever. */
export const backendModuleCloseMs = 5_000;

/**
 * Loads an ENGINE_BACKENDS module entry and builds its scanner. Throws {@link BackendModuleError}
 * naming the entry when the module cannot be imported, exports no `createScanner`, or its
 * scanner has no string `name` or no `scan` function.
 * @param entry `npm:<package>` or a path (relative to `cwd`)
 * @param options.cwd where relative paths and packages are resolved from (default: the process's)
 */
export async function loadBackendModule(
  entry: string,
  options: {
    cwd?: string;
    /** Bound on import + createScanner() and on each setup, in ms. Default {@link backendModuleStartMs}. */
    startMs?: number;
    /** Bound on each close and dispose, in ms. Default {@link backendModuleCloseMs}. */
    closeMs?: number;
  } = {},
): Promise<BackendModule> {
  const startMs = options.startMs ?? backendModuleStartMs;
  const closeMs = options.closeMs ?? backendModuleCloseMs;
  const namespace = await importBackendModule(entry, options.cwd ?? process.cwd(), startMs);
  const { factory, conformance } = readModuleExports(entry, namespace);
  const scanners = new ModuleScanners(entry, { startMs, closeMs });
  const build = (): Promise<Scanner> => scanners.create(factory, "createScanner");
  const scanner = await build();
  return {
    entry,
    name: scanner.name,
    scanner,
    createScanner: build,
    conformance: conformanceOptions(conformance, (create, factoryName) =>
      scanners.create(create, factoryName),
    ),
    dispose: () => scanners.dispose(),
  };
}
