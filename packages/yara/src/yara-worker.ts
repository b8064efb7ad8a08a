// Worker thread: compiles the rules once with YARA-X (WebAssembly) and scans what the pool
// sends. It runs nothing on the main thread; the pool terminates it to stop a scan.
import { readFileSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { Compiler, initSync, type Rules, type Scanner } from "@virustotal/yara-x";
import type {
  CompiledWasm,
  ExternalValue,
  RawMatch,
  WorkerRequest,
  WorkerResponse,
} from "./yara-worker-protocol.js";

interface YaraXMatch {
  identifier: string;
  namespace: string;
  isPrivate: boolean;
  tags: string[];
  metadata: Array<{ identifier: string; value: ExternalValue }>;
  patterns: Array<{ matches: unknown[] }>;
}

/** What @types/node does not declare of the WebAssembly global. */
interface WasmGlobals {
  WebAssembly: { RuntimeError: new (...args: never[]) => Error };
}

const port = parentPort;
if (!port) throw new Error("@engine/yara: yara-worker.js must run in a worker thread");
const instance = initSync({
  module: (workerData as { module: CompiledWasm }).module as Parameters<
    typeof initSync
  >[0] extends { module: infer M }
    ? M
    : never,
}) as unknown as { __wbindgen_externrefs?: { length: number } };

/**
 * Size of the instance's externref table past which this worker asks to be replaced. YARA-X's
 * WebAssembly build (1.20.0) leaves one or two entries of it behind per scan; the table doubles
 * as it fills, and a doubling past ~9,000 entries traps (`unreachable`, then `memory access out
 * of bounds` at every scan: measured in a worker at 6,347-6,471 scans, 12,986 on a main
 * thread). It reaches this size after ~2,000-3,000 scans, one doubling before that.
 */
const wornTableLength = 5000;

/** Whether this worker should be replaced before its instance wears out. */
function worn(): boolean {
  return (instance.__wbindgen_externrefs?.length ?? 0) >= wornTableLength;
}

let rules: Rules | undefined;
let scanner: Scanner | undefined;
/** Externals some rule mentions: setting one costs ~2 ms a scan in YARA-X's WebAssembly build. */
let referenced = new Set<string>();
const lastValues = new Map<string, ExternalValue>();
const pending = new Map<
  number,
  { path?: string; externals: Record<string, ExternalValue>; chunks: Uint8Array[] }
>();

function reply(message: WorkerResponse): void {
  port?.postMessage(message);
}

function newCompiler(externals: Record<string, ExternalValue>): Compiler {
  const compiler = new Compiler();
  for (const [name, value] of Object.entries(externals)) compiler.defineGlobal(name, value);
  return compiler;
}

function compile(request: Extract<WorkerRequest, { type: "compile" }>): void {
  const errors: Array<{ index: number; text: string }> = [];
  const warnings: Array<{ index: number; text: string }> = [];
  let accepted = request.sources.map((_, index) => index);
  if (request.validate) {
    // A failed addSource poisons a compiler's build(), so each file is tried on its own first.
    accepted = [];
    request.sources.forEach((source, index) => {
      const compiler = newCompiler(request.externals);
      try {
        compiler.newNamespace(source.namespace);
        compiler.addSource(source.source);
        accepted.push(index);
        for (const text of compiler.warnings) warnings.push({ index, text });
      } catch (error) {
        errors.push({ index, text: String(error instanceof Error ? error.message : error) });
      } finally {
        compiler.free();
      }
    });
  }
  if (accepted.length > 0) {
    const compiler = newCompiler(request.externals);
    for (const index of accepted) {
      const source = request.sources[index];
      if (!source) continue;
      compiler.newNamespace(source.namespace);
      compiler.addSource(source.source);
    }
    scanner?.free();
    rules?.free();
    rules = compiler.build();
    scanner = rules.scanner();
    const used = accepted.map((index) => request.sources[index]?.source ?? "");
    referenced = new Set(
      Object.keys(request.externals).filter((name) => {
        const word = new RegExp(`\\b${name}\\b`); // names are identifiers (validated)
        return used.some((source) => word.test(source));
      }),
    );
    lastValues.clear();
  }
  reply({ type: "compiled", accepted, errors, warnings });
}

function scan(id: number): void {
  const job = pending.get(id);
  pending.delete(id);
  if (!job) return;
  if (!scanner) {
    reply({ type: "scan-failed", id, message: "no rules are loaded", unreadable: false });
    return;
  }
  let bytes: Uint8Array;
  try {
    bytes =
      job.path !== undefined
        ? readFileSync(job.path)
        : job.chunks.length === 1 && job.chunks[0]
          ? job.chunks[0]
          : Buffer.concat(job.chunks);
  } catch (error) {
    reply({
      type: "scan-failed",
      id,
      message: `cannot read ${job.path}: ${String(error)}`,
      unreadable: true,
    });
    return;
  }
  for (const [name, value] of Object.entries(job.externals)) {
    if (!referenced.has(name) || lastValues.get(name) === value) continue;
    scanner.setGlobal(name, value);
    lastValues.set(name, value);
  }
  const result = scanner.scan(bytes) as { matches: YaraXMatch[] };
  const matches: RawMatch[] = result.matches
    .filter((match) => !match.isPrivate)
    .map((match) => ({
      namespace: match.namespace,
      identifier: match.identifier,
      tags: match.tags,
      metadata: Object.fromEntries(match.metadata.map((entry) => [entry.identifier, entry.value])),
    }));
  reply({ type: "result", id, matches, worn: worn() });
}

port.on("message", (request: WorkerRequest) => {
  try {
    switch (request.type) {
      case "compile":
        compile(request);
        break;
      case "scan":
        pending.set(request.id, {
          ...(request.path === undefined ? {} : { path: request.path }),
          externals: request.externals,
          chunks: [],
        });
        if (request.path !== undefined) scan(request.id);
        break;
      case "chunk":
        pending.get(request.id)?.chunks.push(request.bytes);
        break;
      case "end":
        scan(request.id);
        break;
    }
  } catch (error) {
    const message = String(error instanceof Error ? error.message : error);
    if (request.type === "compile") reply({ type: "compile-failed", message });
    else {
      const broken =
        error instanceof (globalThis as unknown as WasmGlobals).WebAssembly.RuntimeError;
      reply({
        type: "scan-failed",
        id: request.id,
        message,
        unreadable: false,
        broken,
        worn: worn(),
      });
    }
  }
});
