import { createRequire } from "node:module";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { type Artifact, defineScanner, type Scanner, type ScanOptions } from "@engine/core";
import type { ConformanceOptions } from "@engine/core/conformance";
import { z } from "zod";

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

/** Thrown when an ENGINE_BACKENDS module cannot be loaded or breaks the contract; names the entry. */
export class BackendModuleError extends Error {
  constructor(entry: string, problem: string, options?: ErrorOptions) {
    super(`ENGINE_BACKENDS entry ${JSON.stringify(entry)}: ${problem}`, options);
    this.name = "BackendModuleError";
  }
}

/** What the module's factory must return: the contract's shape, checked before first use. */
const pluginScannerSchema = z.looseObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "letters, digits, dot, dash, underscore"),
  scan: z.function(),
  setup: z.function().optional(),
  close: z.function().optional(),
});

/** The conformance options a module may export (`export const conformance = {...}`). */
const conformanceSchema = z
  .looseObject({
    capabilities: z
      .looseObject({
        detectsEicar: z.boolean().optional(),
        detectsEicarInLargeArtifacts: z.boolean().optional(),
        maxArtifactBytes: z.number().int().positive().optional(),
        createUnreachableScanner: z.function().optional(),
      })
      .optional(),
    detectsEicar: z.boolean().optional(),
    createUnreachableScanner: z.function().optional(),
    groups: z.record(z.string(), z.boolean()).optional(),
    stopWithinMs: z.number().positive().max(600_000).optional(),
    unreachableWithinMs: z.number().positive().max(600_000).optional(),
    largeArtifactBytes: z
      .number()
      .int()
      .positive()
      .max(1024 ** 3)
      .optional(),
    detectsEicarInLargeArtifacts: z.boolean().optional(),
    concurrentScans: z.number().int().positive().max(256).optional(),
    checkTimeoutMs: z.number().positive().max(600_000).optional(),
  })
  .optional();

type PluginScanner = z.output<typeof pluginScannerSchema> & {
  scan(artifact: Artifact, options: ScanOptions): unknown;
  setup?(): unknown;
  close?(): unknown;
  [Symbol.asyncDispose]?(): unknown;
};

/** The module's URL: a path from the working directory, or a package resolved from it (then from the engine). */
function moduleUrl(entry: string, cwd: string): string {
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

/** How long a module may take to import and build its scanner, and its scanner to set up, in ms. */
export const backendModuleStartMs = 30_000;
/** How long a module's scanner may take to close, in ms: shutdown never waits for ever. */
export const backendModuleCloseMs = 5_000;

/**
 * `promise`, or a rejection with `message` after `ms` (the promise is left to settle alone).
 * The bound on every step of a backend module, and on `check`'s conformance checks.
 */
export function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => {
      // Not unref'd: a step that hangs with nothing else alive still ends in this error.
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function describe(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return "an error that cannot be printed"; // e.g. Object.create(null), or a throwing getter
  }
}

/**
 * Reads from a module's exports, which may be getters or Proxies that throw: a throw becomes a
 * BackendModuleError naming the entry and what was being read.
 */
function readExport<T>(entry: string, what: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    throw new BackendModuleError(entry, `reading ${what} threw: ${describe(error)}`, {
      cause: error,
    });
  }
}

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
  let namespace: Record<string, unknown>;
  try {
    namespace = (await within(
      import(moduleUrl(entry, options.cwd ?? process.cwd())),
      startMs,
      `did not finish loading within ${startMs / 1000} s`,
    )) as Record<string, unknown>;
  } catch (error) {
    throw new BackendModuleError(entry, `cannot be imported: ${describe(error)}`, {
      cause: error,
    });
  }
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
  const conformanceExport = readExport(entry, "its conformance export", () =>
    conformanceSchema.safeParse(namespace.conformance ?? exported.conformance),
  );
  if (!conformanceExport.success)
    throw new BackendModuleError(
      entry,
      `its conformance export is invalid: ${z.prettifyError(conformanceExport.error)}`,
    );

  const made: PluginScanner[] = [];
  /** Plugins whose close() ran since their last setup: dispose does not close them twice. */
  const closed = new WeakSet<PluginScanner>();
  /** Checks what a factory returned and wraps it in the contract. */
  const wrap = (candidate: unknown, factoryName: string): Scanner => {
    const parsed = readExport(entry, `what ${factoryName}() returned`, () =>
      pluginScannerSchema.safeParse(candidate),
    );
    if (!parsed.success)
      throw new BackendModuleError(
        entry,
        `${factoryName}() did not return a scanner: ${z.prettifyError(parsed.error)}`,
      );
    const plugin = candidate as PluginScanner;
    made.push(plugin);
    return defineScanner({
      name: plugin.name,
      scan: async (artifact, context) =>
        (await plugin.scan(artifact, {
          signal: context.signal,
          ...(context.deadline === undefined ? {} : { deadline: context.deadline }),
        })) as never,
      ...(plugin.setup
        ? {
            setup: async () => {
              closed.delete(plugin);
              await within(
                Promise.resolve().then(() => plugin.setup?.()),
                startMs,
                `${plugin.name}: setup did not finish within ${startMs / 1000} s`,
              );
            },
          }
        : {}),
      ...(plugin.close
        ? {
            close: async () => {
              closed.add(plugin);
              await within(
                Promise.resolve().then(() => plugin.close?.()),
                closeMs,
                `${plugin.name}: close did not finish within ${closeMs / 1000} s`,
              );
            },
          }
        : {}),
    });
  };
  const call = async (create: unknown, factoryName: string): Promise<Scanner> => {
    let candidate: unknown;
    try {
      candidate = await within(
        Promise.resolve().then(() => (create as () => unknown)()),
        startMs,
        `did not return within ${startMs / 1000} s`,
      );
    } catch (error) {
      throw new BackendModuleError(entry, `${factoryName}() failed: ${describe(error)}`, {
        cause: error,
      });
    }
    return wrap(candidate, factoryName);
  };
  const build = (): Promise<Scanner> => call(factory, "createScanner");

  const scanner = await build();
  const {
    createUnreachableScanner: legacyUnreachable,
    capabilities: declaredCapabilities,
    ...declared
  } = conformanceExport.data ?? {};
  const { createUnreachableScanner: declaredUnreachable, ...capabilities } =
    declaredCapabilities ?? {};
  const createUnreachableScanner = declaredUnreachable ?? legacyUnreachable;
  return {
    entry,
    name: scanner.name,
    scanner,
    createScanner: build,
    conformance: {
      // A third-party backend may be slow or remote: the 32 MiB stream is opt-in.
      ...declared,
      groups: { large: false, ...declared.groups },
      capabilities: {
        ...capabilities,
        ...(createUnreachableScanner
          ? {
              createUnreachableScanner: () =>
                call(createUnreachableScanner, "conformance.createUnreachableScanner"),
            }
          : {}),
      },
    },
    dispose: async () => {
      const plugins = made.splice(0);
      await Promise.allSettled(
        plugins.map((plugin) => {
          const release =
            plugin[Symbol.asyncDispose] ?? (closed.has(plugin) ? undefined : plugin.close);
          return within(
            Promise.resolve().then(() => release?.call(plugin)),
            closeMs,
            "dispose did not finish",
          );
        }),
      );
    },
  };
}
