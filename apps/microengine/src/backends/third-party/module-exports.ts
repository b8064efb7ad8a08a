import { z } from "zod";
import { BackendModuleError, describeThrown } from "./backend-module-error.js";
import { type ConformanceDeclaration, conformanceDeclarationSchema } from "./module-conformance.js";

/** What the engine reads from a backend module: its factory and its conformance declaration. */
export interface ModuleExports {
  /** Its `createScanner` (a named export, or one of its default export): a function. */
  factory: unknown;
  /** Its `conformance` export, checked; undefined when it has none. */
  conformance: ConformanceDeclaration;
}

/**
 * Reads from a module's exports, which may be getters or Proxies that throw: a throw becomes a
 * BackendModuleError naming the entry and what was being read.
 */
export function readExport<T>(entry: string, what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw new BackendModuleError(entry, `reading ${what} threw: ${describeThrown(error)}`, {
      cause: error,
    });
  }
}

/**
 * Reads `createScanner` and `conformance` from a module's namespace (or its default export).
 * Throws {@link BackendModuleError} naming the entry when it exports no `createScanner`
 * function, its conformance declaration is invalid, or reading either throws.
 */
export function readModuleExports(
  entry: string,
  namespace: Record<string, unknown>,
): ModuleExports {
  const exported = readExport(
    entry,
    "its default export",
    () => (namespace.default ?? {}) as Record<string, unknown>,
  );
  const factory = readExport(
    entry,
    "its createScanner export",
    () => namespace.createScanner ?? exported.createScanner,
  );
  if (typeof factory !== "function")
    throw new BackendModuleError(
      entry,
      "exports no createScanner() (export a function createScanner that returns a scanner)",
    );
  // A getter or Proxy in the export can throw while zod reads it.
  const conformance = readExport(entry, "its conformance export", () =>
    conformanceDeclarationSchema.safeParse(namespace.conformance ?? exported.conformance),
  );
  if (!conformance.success)
    throw new BackendModuleError(
      entry,
      `its conformance export is invalid: ${z.prettifyError(conformance.error)}`,
    );
  return { factory, conformance: conformance.data };
}
