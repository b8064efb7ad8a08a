import {
  ArtifactUnavailableError,
  BackendUnavailableError,
  ConcurrencyLimit,
  EngineError,
  errorFromSignal,
  ScanTimeoutError,
} from "@engine/core";
import { diagnosticAt } from "./rule-diagnostics.js";
import type { RuleSource } from "./rule-sources.js";
import type { EngineCompilation, EngineLimits, ScanEngine } from "./scan-engine.js";
import type { ExternalValue } from "./yara-worker-protocol.js";

type NativeBinding = typeof import("@engine/yara-native");

let binding: Promise<NativeBinding> | undefined;

/**
 * Loads the optional native engine (`@engine/yara-native`, an N-API addon over libyara) once.
 * Throws `BackendUnavailableError` naming what is missing (see `nativeEngineUnavailable`).
 */
export function loadNativeEngine(): Promise<NativeBinding> {
  binding ??= import("@engine/yara-native").catch((error: unknown) => {
    binding = undefined;
    throw nativeEngineUnavailable(error);
  });
  return binding;
}

const nativePackage = "@engine/yara-native";
const wasmInstead = 'or use engine: "wasm" (or "auto", which falls back to it)';

/**
 * The error for an `@engine/yara-native` that did not load, by what went wrong: the package is
 * not installed (an optional dependency: `--omit=optional`, or its install failed); it is
 * installed but its addon was never built (libyara's headers or a C++ toolchain were missing
 * when it installed, and its install script let the install succeed); or the built addon does
 * not load (libyara's shared library missing, or built for another Node or platform).
 */
export function nativeEngineUnavailable(error: unknown): BackendUnavailableError {
  const { code, message } = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown;
    message?: unknown;
  };
  const text = typeof message === "string" ? message : String(error);
  const notFound = code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
  if (notFound && text.includes(`'${nativePackage}'`))
    return new BackendUnavailableError({
      message: `@engine/yara: the native engine needs the optional package ${nativePackage}, which is not installed`,
      hint: `Install it next to @engine/yara (npm install ${nativePackage}; it builds with node-gyp, so first: apt-get install libyara-dev g++ make python3), ${wasmInstead}.`,
      cause: error,
    });
  if (notFound && text.includes("yara_native.node"))
    return new BackendUnavailableError({
      message: `@engine/yara: ${nativePackage} is installed but its addon was not built (no build/Release/yara_native.node)`,
      hint: `It builds when it installs only if libyara's headers and a C++ toolchain are there: apt-get install libyara-dev g++ make python3, then npm rebuild ${nativePackage}; ${wasmInstead}.`,
      cause: error,
    });
  return new BackendUnavailableError({
    message: `@engine/yara: ${nativePackage} is installed but its native addon failed to load: ${text}`,
    hint: `libyara's shared library must be installed (apt-get install libyara-dev, or your distribution's libyara package) and the addon built for this Node and platform: npm rebuild ${nativePackage}; ${wasmInstead}.`,
    cause: error,
  });
}

/**
 * Compiles with libyara on the libuv thread pool, each file alone first; `start()` returns an
 * engine whose scans also run on the thread pool (never on the event loop). libyara cannot be
 * interrupted from outside, so each scan gets libyara's own timeout (whole seconds, rounded up,
 * from the deadline) and the caller is answered at the deadline by the scanner's race.
 */
export async function compileWithNative(
  native: NativeBinding,
  sources: RuleSource[],
  externals: Record<string, ExternalValue>,
  limits: EngineLimits,
): Promise<EngineCompilation> {
  const compiled = await native.compile(
    sources.map((source) => source.namespace),
    sources.map((source) => source.source),
    externals,
    true,
  );
  const diagnostics = compiled.diagnostics.flatMap((entry) => {
    const source = sources[entry.index];
    if (!source) return [];
    return [
      diagnosticAt(
        {
          message: entry.message,
          severity: entry.level === 0 ? "error" : "warning",
          code: "libyara",
        },
        source.origin,
        source.segments,
        entry.line,
      ),
    ];
  });
  const rules = compiled.rules;
  return {
    accepted: compiled.accepted,
    diagnostics,
    start: async (): Promise<ScanEngine> => {
      if (!rules)
        throw new BackendUnavailableError({
          message: "@engine/yara: libyara produced no rules",
        });
      // Each native scan holds a libuv thread until libyara returns: at most `workers` at once,
      // at most `maxQueuedScans` waiting, so scans never fill the thread pool that file
      // reads and DNS lookups need too.
      const slots = new ConcurrencyLimit({
        concurrency: limits.workers,
        maxWaiting: limits.maxQueuedScans,
        what: "native YARA scan slots",
      });
      return {
        kind: "native",
        vendorVersion: native.version(),
        status: () => ({
          workers: limits.workers,
          size: limits.workers,
          busy: slots.running,
          queued: slots.waiting,
          maxQueued: limits.maxQueuedScans,
        }),
        scan: async (artifact, scanExternals, maxBytes, signal, deadline) => {
          try {
            await slots.acquire(signal);
          } catch (error) {
            if (signal.aborted) throw errorFromSignal(signal);
            throw error;
          }
          let call: Promise<unknown> | undefined;
          const timeoutSeconds =
            deadline === undefined ? 0 : Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
          try {
            // The addon reads a local file itself (up to 1 MiB, else maps it); other artifacts are
            // read into memory once.
            const target =
              artifact.path !== undefined && artifact.replayable
                ? artifact.path
                : await artifact.bytes({ signal, maxBytes });
            const scanning = native.scan(rules, target, scanExternals, timeoutSeconds);
            call = scanning;
            return await scanning;
          } catch (error) {
            if (signal.aborted) throw errorFromSignal(signal);
            const message = (error as Error)?.message ?? String(error);
            if (/timed out/.test(message)) {
              throw new ScanTimeoutError({
                message: `@engine/yara: libyara stopped the scan at its ${timeoutSeconds} s timeout`,
                cause: error,
              });
            }
            if (/cannot read/.test(message)) {
              throw new ArtifactUnavailableError({
                message: `@engine/yara: libyara cannot read ${artifact.path ?? "the artifact"}`,
                cause: error,
              });
            }
            throw new EngineError({
              message: `@engine/yara: libyara failed: ${message}`,
              cause: error,
            });
          } finally {
            // The slot goes back when libyara is done with the thread, not when we stop waiting.
            if (call)
              call.then(
                () => slots.release(),
                () => slots.release(),
              );
            else slots.release();
          }
        },
        close: async () => {},
      };
    },
    abandon: async () => {},
  };
}
