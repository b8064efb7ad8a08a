import { type Artifact, defineScanner, type Scanner, type ScanOptions } from "@engine/core";
import { z } from "zod";
import { BackendModuleError, describeThrown } from "./backend-module-error.js";
import { readExport } from "./module-exports.js";
import { within } from "./time-bound.js";

/** What the module's factory must return: the contract's shape, checked before first use. */
const pluginScannerSchema = z.looseObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/i, "letters, digits, dot, dash, underscore"),
  scan: z.function(),
  setup: z.function().optional(),
  close: z.function().optional(),
});

type PluginScanner = z.output<typeof pluginScannerSchema> & {
  scan(artifact: Artifact, options: ScanOptions): unknown;
  setup?(): unknown;
  close?(): unknown;
  [Symbol.asyncDispose]?(): unknown;
};

/**
 * The scanners one backend module's factories made, each checked and wrapped in the contract
 * (results validated, deadline and abort enforced, failures typed), its `setup` bounded by
 * `startMs` and its `close` by `closeMs`; {@link ModuleScanners.dispose} disposes them all.
 */
export class ModuleScanners {
  readonly #entry: string;
  readonly #startMs: number;
  readonly #closeMs: number;
  readonly #made: PluginScanner[] = [];
  /** Plugins whose close() ran since their last setup: dispose does not close them twice. */
  readonly #closed = new WeakSet<PluginScanner>();

  /**
   * @param entry the ENGINE_BACKENDS entry, named in every error
   * @param bounds.startMs bound on each factory call and each setup, in ms
   * @param bounds.closeMs bound on each close and dispose, in ms
   */
  constructor(entry: string, bounds: { startMs: number; closeMs: number }) {
    this.#entry = entry;
    this.#startMs = bounds.startMs;
    this.#closeMs = bounds.closeMs;
  }

  /**
   * Calls `factory` (sync or async, within `startMs`) and wraps the scanner it returns. Throws
   * {@link BackendModuleError} naming `factoryName` when it fails or returns no scanner.
   */
  async create(factory: unknown, factoryName: string): Promise<Scanner> {
    let candidate: unknown;
    try {
      candidate = await within(
        Promise.resolve().then(() => (factory as () => unknown)()),
        this.#startMs,
        `did not return within ${this.#startMs / 1000} s`,
      );
    } catch (error) {
      throw new BackendModuleError(
        this.#entry,
        `${factoryName}() failed: ${describeThrown(error)}`,
        {
          cause: error,
        },
      );
    }
    return this.#wrap(candidate, factoryName);
  }

  /** Disposes every scanner made (the running one included), each within `closeMs`. */
  async dispose(): Promise<void> {
    const plugins = this.#made.splice(0);
    await Promise.allSettled(
      plugins.map((plugin) => {
        const release =
          plugin[Symbol.asyncDispose] ?? (this.#closed.has(plugin) ? undefined : plugin.close);
        return within(
          Promise.resolve().then(() => release?.call(plugin)),
          this.#closeMs,
          "dispose did not finish",
        );
      }),
    );
  }

  /** Checks what a factory returned and wraps it in the contract. */
  #wrap(candidate: unknown, factoryName: string): Scanner {
    const parsed = readExport(this.#entry, `what ${factoryName}() returned`, () =>
      pluginScannerSchema.safeParse(candidate),
    );
    if (!parsed.success)
      throw new BackendModuleError(
        this.#entry,
        `${factoryName}() did not return a scanner: ${z.prettifyError(parsed.error)}`,
      );
    const plugin = candidate as PluginScanner;
    this.#made.push(plugin);
    return defineScanner({
      name: plugin.name,
      scan: async (artifact, context) =>
        (await plugin.scan(artifact, {
          signal: context.signal,
          ...(context.deadline === undefined ? {} : { deadline: context.deadline }),
        })) as never,
      ...(plugin.setup ? { setup: () => this.#setup(plugin) } : {}),
      ...(plugin.close ? { close: () => this.#close(plugin) } : {}),
    });
  }

  async #setup(plugin: PluginScanner): Promise<void> {
    this.#closed.delete(plugin);
    await this.#bounded(plugin, "setup", this.#startMs);
  }

  async #close(plugin: PluginScanner): Promise<void> {
    this.#closed.add(plugin);
    await this.#bounded(plugin, "close", this.#closeMs);
  }

  /** The plugin's own `setup` or `close`, within `ms`. */
  #bounded(plugin: PluginScanner, step: "setup" | "close", ms: number): Promise<unknown> {
    return within(
      Promise.resolve().then(() => plugin[step]?.()),
      ms,
      `${plugin.name}: ${step} did not finish within ${ms / 1000} s`,
    );
  }
}
