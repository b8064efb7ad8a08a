import type { Scanner } from "@engine/core";
import type { Logger } from "pino";
import type { EngineConfig } from "../config/config.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { SignatureCoverage } from "../protocol/coverage.js";

/** Whether a backend runs, and why (or why not): one line of the start banner. */
export interface BackendStatus {
  /** The backend's name (a third-party module's scanner name). */
  name: string;
  running: boolean;
  /** Its engine, version and where its signatures come from; or why it does not run. */
  reason: string;
  /** Something the operator must know about its answers (e.g. test signatures only). */
  warning?: string;
  /** True when it is off because ENGINE_BACKENDS leaves it out (a choice, not a problem: no warning). */
  leftOut?: boolean;
}

/** The banner line of a backend ENGINE_BACKENDS leaves out. */
export function leftOutStatus(name: string): BackendStatus {
  return { name, running: false, reason: "not in ENGINE_BACKENDS", leftOut: true };
}

/** What one backend reports to `/readyz`: `ok`, plus what an operator needs to see. */
export type BackendHealth = { ok: boolean } & Record<string, unknown>;

/**
 * One running backend of the engine: its scanner and everything the engine asks of it besides
 * scanning. `/readyz`, `check`, the banner, the result cache's key and reloads read these, so
 * adding a backend means adding one entry to the table (`backend-table.ts`), not editing them.
 */
export interface EngineBackend {
  /** The scanner's name (the multi-engine's backend name). */
  readonly name: string;
  /** What the multi-engine runs. */
  readonly scanner: Scanner;
  /**
   * True when its scanner sees inside containers (UNPACK: wrapped by `createUnpackingScanner`,
   * its answers carry `metadata.unpack`); `check` holds it to the archive cases.
   */
  readonly unpacks?: boolean;
  /** Its line in the start banner (`serve`, `worker`, `scan`, `check`). */
  readonly status: BackendStatus;
  /**
   * What its signatures can see now (`signature-coverage.ts`): `test-signatures` for ClamAV
   * without an official database, YARA with the bundled EICAR rule only, the `eicar` backend.
   * Absent (a third-party module): `signatures`.
   */
  coverage?(): SignatureCoverage;
  /**
   * Its readiness for `/readyz`: probed at most once a second by the caller; it also publishes
   * its signatures' age to the metrics it was built with. May throw (a typed engine error):
   * the probe reports it as not ok with the error's public code.
   */
  health(): Promise<BackendHealth>;
  /**
   * Its own checks for `check` beyond the EICAR/empty/benign scans, one PASS/FAIL line each
   * on `out`; resolves false when one failed.
   */
  selfCheck?(out: NodeJS.WritableStream): Promise<boolean>;
  /**
   * What of its answers can change while the engine runs and `signaturesVersion` does not
   * say (an engine version, a database it confirmed loading): part of the result cache's key.
   * Deterministic: the same in every worker.
   */
  cacheKey?(): Promise<unknown>;
  /** True while its answers must not be cached (its signatures are being reloaded). */
  cachePaused?(): boolean;
  /**
   * Reloads its signatures; logs and counts the outcome itself. Resolves false when the reload
   * failed (the old signatures stay in use).
   */
  reload?(): Promise<boolean>;
  /** True when its signatures come from RULES_DIR, so RULES_WATCH reloads it. */
  readonly readsRulesDirectory?: boolean;
  /** Releases what it holds besides its scanner (a managed clamd, a module's scanners). */
  release?(): Promise<void>;
}

/**
 * What a backend kind is given to build itself. The table gives every kind the whole config; a
 * kind names the settings it reads (`BackendBuildContext<"RULES_DIR" | "YARA_ENGINE">`).
 */
export interface BackendBuildContext<Setting extends keyof EngineConfig = keyof EngineConfig> {
  /** The settings (the kind's slice of them). */
  config: Pick<EngineConfig, Setting>;
  logger: Logger;
  /** ENGINE_BACKENDS was set: a backend it names must start, or the engine does not. */
  explicit: boolean;
  /** Refuse a clamd of the operator's that answers OK for what it cannot inspect (default on). */
  verifyClamdAlerts: boolean;
  /** Where reloads and signature ages (refreshed by each `health()`) are counted. */
  metrics?: EngineMetrics | undefined;
}

/** What building a backend kind gave: the running backend, or only why it does not run. */
export interface BackendBuild {
  /** The running backend; absent when it does not run. */
  backend?: EngineBackend;
  /** Its banner line when it does not run (a running backend carries its own). */
  status?: BackendStatus;
}

/** A backend the engine knows by name (`yara`, `clamav`, `eicar`): how it builds from the settings. */
export interface BackendKind {
  /**
   * Builds it. `wanted` is false when ENGINE_BACKENDS leaves it out: the kind may still return
   * a banner line saying so. Throws (after releasing what it started) when a backend that must
   * start cannot.
   */
  build(wanted: boolean, context: BackendBuildContext): Promise<BackendBuild>;
}
