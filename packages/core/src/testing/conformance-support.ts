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

/** Options of the conformance suite. */
export interface ConformanceOptions {
  /** Whether the backend claims to detect the EICAR test file. Default true. */
  detectsEicar?: boolean;
  /**
   * Builds a scanner of the same backend pointed at something that does not answer (a
   * closed port, a missing socket). Without it, the `unreachable` group is skipped.
   */
  createUnreachableScanner?: () => Scanner | Promise<Scanner>;
  /** Groups to switch off (`{ large: false }`). Default: all on. */
  groups?: Partial<Record<ConformanceGroup, boolean>>;
  /** How soon after an abort or deadline the scan must have ended, in ms. Default 2000. */
  stopWithinMs?: number;
  /** How long an unreachable backend may take to fail, in ms. Default 10000. */
  unreachableWithinMs?: number;
  /** Size of the large streamed artifact, in bytes. Default 32 MiB. */
  largeArtifactBytes?: number;
  /** Whether EICAR at the end of the large artifact must be found. Default: `detectsEicar`. */
  detectsEicarInLargeArtifacts?: boolean;
  /** Number of concurrent scans in the concurrency group. Default 8. */
  concurrentScans?: number;
  /** Timeout of each check, in ms (vitest's per-test timeout). Default 60000. */
  checkTimeoutMs?: number;
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
