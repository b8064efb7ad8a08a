/**
 * A compiled WebAssembly module (`WebAssembly.Module`), passed to worker threads so that each
 * instantiates it without compiling it again. Opaque here: @types/node does not declare it.
 */
export type CompiledWasm = object;

/** Values an external variable can take. */
export type ExternalValue = string | number | boolean;

/** A rule source as sent to a worker. */
export interface WorkerRuleSource {
  namespace: string;
  source: string;
}

/** Messages from the pool to a worker. */
export type WorkerRequest =
  | {
      type: "compile";
      sources: WorkerRuleSource[];
      externals: Record<string, ExternalValue>;
      /** Compile each source alone first, to report the broken ones and skip them. */
      validate: boolean;
    }
  | { type: "scan"; id: number; path?: string; externals: Record<string, ExternalValue> }
  | { type: "chunk"; id: number; bytes: Uint8Array }
  | { type: "end"; id: number };

/** A matching rule as a worker reports it (private rules are never reported). */
export interface RawMatch {
  namespace: string;
  identifier: string;
  tags: string[];
  metadata: Record<string, ExternalValue>;
}

/** Messages from a worker to the pool. */
export type WorkerResponse =
  | {
      type: "compiled";
      /** Indexes (into the sources sent) that compiled. */
      accepted: number[];
      errors: Array<{ index: number; text: string }>;
      warnings: Array<{ index: number; text: string }>;
    }
  | { type: "compile-failed"; message: string }
  | {
      type: "result";
      id: number;
      matches: RawMatch[];
      /** The worker's instance nears what it can take: the pool replaces it (see yara-worker.ts). */
      worn?: boolean;
    }
  | {
      type: "scan-failed";
      id: number;
      message: string;
      unreadable: boolean;
      /**
       * The WebAssembly instance trapped (`unreachable`, `memory access out of bounds`): its
       * state can no longer be trusted, and the pool replaces the worker.
       */
      broken?: boolean;
      /** As for a result. */
      worn?: boolean;
    };
