import type { Artifact } from "@engine/core";
import type { RuleDiagnostic } from "./rule-diagnostics.js";
import type { PoolStatus } from "./yara-worker-pool.js";
import type { ExternalValue, RawMatch } from "./yara-worker-protocol.js";

/** Which engine runs the rules. */
export type EngineKind = "wasm" | "native";

/** A started engine holding compiled rules. */
export interface ScanEngine {
  readonly kind: EngineKind;
  /** Version of the engine library (YARA-X or libyara), for `vendor_version`. */
  readonly vendorVersion: string;
  /** Scans one artifact; must end by `signal` (and, for native code, by its own timeout near `deadline`). */
  scan(
    artifact: Artifact,
    externals: Record<string, ExternalValue>,
    maxBytes: number,
    signal: AbortSignal,
    deadline: number | undefined,
  ): Promise<RawMatch[]>;
  /** Releases workers or compiled rules. */
  close(): Promise<void>;
  /**
   * Workers (wasm threads, or native scans allowed at once on the thread pool), busy ones,
   * the queue and its bound: readiness and saturation.
   */
  status(): PoolStatus;
}

/** How many scans run at once and how many may wait: the bounds of a started engine. */
export interface EngineLimits {
  /** WebAssembly worker threads, or native scans at once on the libuv thread pool. */
  workers: number;
  /** Scans that may wait; the next is refused with `OverloadedError`. */
  maxQueuedScans: number;
}

/** The result of compiling rule sources with an engine, before it is started. */
export interface EngineCompilation {
  /** Indexes of the sources that compiled. */
  accepted: number[];
  /** Problems per source, already mapped to files and lines. */
  diagnostics: RuleDiagnostic[];
  /** Starts the engine with the accepted sources. */
  start(): Promise<ScanEngine>;
  /** Drops what was compiled (setup failed). */
  abandon(): Promise<void>;
}
