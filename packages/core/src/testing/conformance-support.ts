import type { Artifact } from "../artifact.js";
import type { ScanAbortedError } from "../errors/scan-aborted-error.js";
import type { ScanTimeoutError } from "../errors/scan-timeout-error.js";
import { type ScanResult, scanResultSchema } from "../scan-result.js";
import type { Scanner, ScanOptions } from "../scanner.js";
import { cleanArtifact } from "./test-artifacts.js";

// What every conformance check shares: the options and the check's shape, and the assertions
// the checks are written with. The checks themselves are one file per group in `checks/`.

/** The groups of the conformance suite; each can be switched off per backend. */
export type ConformanceGroup =
  | "eicar"
  | "clean"
  | "schema"
  | "abort"
  | "deadline"
  | "lifecycle"
  | "concurrency"
  | "unreachable"
  | "empty"
  | "large";

/**
 * What a scanner can do, declared once by its author: the suite runs the checks that apply and
 * registers the others as skipped, saying which declaration skipped them.
 */
export interface ScannerCapabilities {
  /** It detects the EICAR test file (the `eicar` group, EICAR in `schema` and `concurrency`). Default true. */
  detectsEicar?: boolean;
  /** It finds EICAR at the very end of a large streamed artifact. Default: `detectsEicar`. */
  detectsEicarInLargeArtifacts?: boolean;
  /**
   * The largest artifact it accepts, in bytes (a backend with a size limit refuses larger ones
   * with `ArtifactTooLargeError`). The `large` group scans an artifact of at most this size,
   * and is skipped when this is under 1 MiB. Default: no limit.
   */
  maxArtifactBytes?: number;
  /**
   * It talks to something that can be down: builds the same scanner pointed at something that
   * does not answer (a closed port, a missing socket), for the `unreachable` group. Without it,
   * that group is skipped.
   */
  createUnreachableScanner?: () => Scanner | Promise<Scanner>;
}

/** Options of the conformance suite. */
export interface ConformanceOptions {
  /** What the scanner can do; the suite runs what applies (see {@link ScannerCapabilities}). */
  capabilities?: ScannerCapabilities;
  /** @deprecated Declare `capabilities.detectsEicar`. */
  detectsEicar?: boolean;
  /** @deprecated Declare `capabilities.createUnreachableScanner`. */
  createUnreachableScanner?: () => Scanner | Promise<Scanner>;
  /** @deprecated Declare `capabilities.detectsEicarInLargeArtifacts`. */
  detectsEicarInLargeArtifacts?: boolean;
  /**
   * Groups to leave out for reasons of the run, not of the scanner (`{ large: false }` on a
   * slow CI machine); what the scanner cannot do belongs in `capabilities`. Default: all on.
   */
  groups?: Partial<Record<ConformanceGroup, boolean>>;
  /** How soon after an abort or deadline the scan must have ended, in ms. Default 2000. */
  stopWithinMs?: number;
  /** How long an unreachable backend may take to fail, in ms. Default 10000. */
  unreachableWithinMs?: number;
  /** Size of the large streamed artifact, in bytes. Default 32 MiB (at most `maxArtifactBytes`). */
  largeArtifactBytes?: number;
  /** Number of concurrent scans in the concurrency group. Default 8. */
  concurrentScans?: number;
  /** Timeout of each check, in ms (vitest's per-test timeout). Default 60000. */
  checkTimeoutMs?: number;
}

/** {@link ScannerCapabilities} with their defaults, and the deprecated top-level options folded in. */
export interface ResolvedCapabilities {
  detectsEicar: boolean;
  detectsEicarInLargeArtifacts: boolean;
  maxArtifactBytes: number;
  createUnreachableScanner: (() => Scanner | Promise<Scanner>) | undefined;
}

/** `maxArtifactBytes` as declared (no limit when absent); anything but a positive number is refused. */
function validMaximum(declared: number | undefined): number {
  if (declared === undefined) return Number.POSITIVE_INFINITY;
  if (typeof declared !== "number" || Number.isNaN(declared) || declared <= 0)
    throw new ConformanceError(
      `capabilities.maxArtifactBytes must be a positive number of bytes, got ${String(declared)}`,
    );
  return declared;
}

/** The capabilities a suite run goes by: declared ones first, then the deprecated options, then the defaults. */
export function capabilitiesOf(options: ConformanceOptions): ResolvedCapabilities {
  const declared = options.capabilities ?? {};
  const detectsEicar = declared.detectsEicar ?? options.detectsEicar ?? true;
  return {
    detectsEicar,
    detectsEicarInLargeArtifacts:
      declared.detectsEicarInLargeArtifacts ?? options.detectsEicarInLargeArtifacts ?? detectsEicar,
    maxArtifactBytes: validMaximum(declared.maxArtifactBytes),
    createUnreachableScanner: declared.createUnreachableScanner ?? options.createUnreachableScanner,
  };
}

/** Smallest artifact the `large` group is worth running with, in bytes (1 MiB). */
export const minimumLargeArtifactBytes = 1024 * 1024;

/** The size of the `large` group's artifact: `largeArtifactBytes` (32 MiB) within `maxArtifactBytes`. */
export function largeArtifactSize(options: ConformanceOptions): number {
  return Math.min(
    options.largeArtifactBytes ?? 32 * 1024 * 1024,
    capabilitiesOf(options).maxArtifactBytes,
  );
}

/** What each check receives. */
export interface ConformanceSubject {
  /** Builds a fresh scanner for one check. */
  createScanner: () => Scanner | Promise<Scanner>;
  /** The suite options. */
  options: ConformanceOptions;
}

/** One check of the suite: a named async function that throws when the scanner fails it. */
export interface ConformanceCheck {
  /** The group the check belongs to. */
  group: ConformanceGroup;
  /** What the check proves, as a test title. */
  name: string;
  /** Runs the check; rejects with an explanation when the scanner does not conform. */
  run: (subject: ConformanceSubject) => Promise<void>;
}

/** Thrown by a check when a scanner breaks the contract. */
export class ConformanceError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(`conformance: ${message}`, options);
    this.name = "ConformanceError";
  }
}

export function fail(message: string, cause?: unknown): never {
  throw new ConformanceError(message, cause === undefined ? undefined : { cause });
}

type Settled<T> =
  | { status: "resolved"; value: T; elapsedMs: number }
  | { status: "rejected"; error: unknown; elapsedMs: number }
  | { status: "pending"; elapsedMs: number };

export async function settleWithin<T>(
  promise: Promise<T>,
  milliseconds: number,
): Promise<Settled<T>> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"pending">((resolve) => {
    timer = setTimeout(() => resolve("pending"), milliseconds);
  });
  try {
    const outcome = await Promise.race([
      promise.then(
        (value) => ({ status: "resolved" as const, value }),
        (error: unknown) => ({ status: "rejected" as const, error }),
      ),
      timeout,
    ]);
    const elapsedMs = Math.round(performance.now() - started);
    return outcome === "pending" ? { status: "pending", elapsedMs } : { ...outcome, elapsedMs };
  } finally {
    clearTimeout(timer);
    promise.catch(() => {});
  }
}

export async function withScanner(
  subject: ConformanceSubject,
  use: (scanner: Scanner) => Promise<void>,
): Promise<void> {
  const scanner = await subject.createScanner();
  try {
    await use(scanner);
  } finally {
    await scanner.close?.();
  }
}

export function describeResult(result: unknown): string {
  return JSON.stringify(result)?.slice(0, 300) ?? String(result);
}

export function assertValid(result: unknown, what: string): ScanResult {
  const parsed = scanResultSchema.safeParse(result);
  if (!parsed.success)
    fail(`${what}: the result does not match scanResultSchema: ${parsed.error.message}`);
  return parsed.data;
}

export function assertVerdict(
  result: unknown,
  expected: ScanResult["verdict"],
  what: string,
): ScanResult {
  const valid = assertValid(result, what);
  if (valid.verdict !== expected) {
    fail(
      `${what}: expected verdict "${expected}", got "${valid.verdict}" (${describeResult(result)})`,
    );
  }
  return valid;
}

export async function expectStopped(
  scanner: Scanner,
  artifact: Artifact,
  options: ScanOptions,
  expected: typeof ScanAbortedError | typeof ScanTimeoutError,
  withinMs: number,
  what: string,
): Promise<void> {
  const outcome = await settleWithin(scanner.scan(artifact, options), withinMs);
  if (outcome.status === "pending")
    fail(`${what}: the scan had not ended ${withinMs} ms after it should have stopped`);
  if (outcome.status === "resolved") {
    fail(
      `${what}: the scan resolved (${describeResult(outcome.value)}) instead of rejecting with ${expected.name}`,
    );
  }
  if (!expected.isInstance(outcome.error)) {
    fail(`${what}: expected a ${expected.name}, got ${String(outcome.error)}`, outcome.error);
  }
}

export async function expectScanWorks(scanner: Scanner, what: string): Promise<void> {
  assertVerdict(
    await scanner.scan(cleanArtifact(`after ${what}`)),
    "benign",
    `a clean scan after ${what}`,
  );
}

export const stopWithin = (subject: ConformanceSubject): number =>
  subject.options.stopWithinMs ?? 2000;
