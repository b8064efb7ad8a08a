import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { diagnosticFromCompiler } from "./rule-diagnostics.js";
import type { RuleSource } from "./rule-sources.js";
import type { EngineCompilation, EngineLimits, ScanEngine } from "./scan-engine.js";
import { compileInWorker, YaraWorkerPool } from "./yara-worker-pool.js";
import type { CompiledWasm, ExternalValue } from "./yara-worker-protocol.js";

const require = createRequire(import.meta.url);
let wasmModule: Promise<CompiledWasm> | undefined;
let yaraXVersion: Promise<string> | undefined;

function yaraXDirectory(): string {
  return dirname(require.resolve("@virustotal/yara-x/package.json"));
}

/** Compiles YARA-X's WebAssembly once per process, off the event loop (`WebAssembly.compile`). */
function loadWasmModule(): Promise<CompiledWasm> {
  // @types/node declares the WebAssembly types but not the global value.
  const { WebAssembly: wasm } = globalThis as unknown as {
    WebAssembly: { compile(bytes: Uint8Array): Promise<CompiledWasm> };
  };
  wasmModule ??= readFile(join(yaraXDirectory(), "pkg", "yara_x_js_bg.wasm")).then((bytes) =>
    wasm.compile(bytes),
  );
  return wasmModule;
}

/** The installed YARA-X version, e.g. "1.20.0". */
export function loadYaraXVersion(): Promise<string> {
  yaraXVersion ??= readFile(join(yaraXDirectory(), "package.json"), "utf8").then(
    (text) => (JSON.parse(text) as { version: string }).version,
  );
  return yaraXVersion;
}

/**
 * Compiles with YARA-X (WebAssembly) in a worker (each file alone first: a failed `addSource`
 * poisons a YARA-X compiler); `start()` runs the pool of `limits.workers` worker threads.
 */
export async function compileWithWasm(
  sources: RuleSource[],
  externals: Record<string, ExternalValue>,
  limits: EngineLimits,
): Promise<EngineCompilation> {
  const module = await loadWasmModule();
  const { worker, report } = await compileInWorker(
    module,
    sources.map(({ namespace, source }) => ({ namespace, source })),
    externals,
  );
  const diagnostics = [
    ...report.errors.map(({ index, text }) => ({ index, text, severity: "error" as const })),
    ...report.warnings.map(({ index, text }) => ({ index, text, severity: "warning" as const })),
  ].flatMap(({ index, text, severity }) => {
    const source = sources[index];
    return source ? [diagnosticFromCompiler(text, source.origin, source.segments, severity)] : [];
  });
  return {
    accepted: report.accepted,
    diagnostics,
    start: async (): Promise<ScanEngine> => {
      const accepted = report.accepted.flatMap((index) => {
        const source = sources[index];
        return source ? [{ namespace: source.namespace, source: source.source }] : [];
      });
      const pool = await YaraWorkerPool.start(
        { module, sources: accepted, externals },
        worker,
        limits.workers,
        { maxQueuedScans: limits.maxQueuedScans },
      );
      return {
        kind: "wasm",
        vendorVersion: await loadYaraXVersion(),
        scan: (artifact, scanExternals, maxBytes, signal) =>
          pool.scan(artifact, scanExternals, maxBytes, signal),
        close: () => pool.close(),
        status: () => pool.status(),
      };
    },
    abandon: async () => {
      await worker.terminate();
    },
  };
}
