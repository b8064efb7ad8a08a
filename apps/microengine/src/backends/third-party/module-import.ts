import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { BackendModuleError, describeThrown } from "./backend-module-error.js";
import { within } from "./time-bound.js";

/** The module's URL: a path from the working directory, or a package resolved from it (then from the engine). */
export function moduleUrl(entry: string, cwd: string): string {
  if (!entry.startsWith("npm:"))
    return pathToFileURL(isAbsolute(entry) ? entry : resolve(cwd, entry)).href;
  const specifier = entry.slice("npm:".length);
  try {
    // The operator's project first: `npm install my-scanner` where the engine runs. Resolved
    // as require.resolve does: a package with both builds is loaded through its require entry.
    return pathToFileURL(createRequire(join(cwd, "package.json")).resolve(specifier)).href;
  } catch {
    // Installed beside the engine (or import-only exports, which require.resolve cannot see).
    return specifier;
  }
}

/**
 * Imports an ENGINE_BACKENDS module entry (resolved from `cwd`), within `startMs`. Throws
 * {@link BackendModuleError} naming the entry when it cannot be imported in time.
 */
export async function importBackendModule(
  entry: string,
  cwd: string,
  startMs: number,
): Promise<Record<string, unknown>> {
  try {
    return (await within(
      import(moduleUrl(entry, cwd)),
      startMs,
      `did not finish loading within ${startMs / 1000} s`,
    )) as Record<string, unknown>;
  } catch (error) {
    throw new BackendModuleError(entry, `cannot be imported: ${describeThrown(error)}`, {
      cause: error,
    });
  }
}
