import { z } from "zod";
import type { Artifact } from "./artifact.js";
import { BackendUnavailableError } from "./errors/backend-unavailable-error.js";
import { EngineError, stampScannerName } from "./errors/engine-error.js";
import { InvalidOptionsError } from "./errors/invalid-options-error.js";
import { parseScanResult, type ScanResult } from "./scan-result.js";
import { createScanSignal, errorFromSignal, raceSignal } from "./scan-signal.js";
import { type Scanner, type ScanOptions, scanOptionsSchema } from "./scanner.js";

/** What a backend's `scan` receives besides the artifact. */
export interface ScanContext {
  /** Fires on the caller's abort or at the deadline; pass it to every I/O call. */
  readonly signal: AbortSignal;
  /** Absolute deadline in epoch milliseconds, when the caller gave one. */
  readonly deadline: number | undefined;
  /** Milliseconds left before the deadline (`Infinity` without one). */
  remainingMs(): number;
}

/** The parts a backend writes; {@link defineScanner} adds the contract around them. */
export interface ScannerDefinition {
  /** Short stable name (`"clamav"`). */
  name: string;
  /** Scans one artifact; should stop I/O when `context.signal` fires. */
  scan(artifact: Artifact, context: ScanContext): Promise<ScanResult>;
  /** Acquires the backend (connect, load rules). Called once until `close`. */
  setup?(): Promise<void>;
  /** Releases it. Called once per successful `setup`. */
  close?(): Promise<void>;
}

const nameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]*$/i, "a scanner name is letters, digits, dot, dash, underscore");

/** The scanners {@link defineScanner} built (by identity: a copy of the object is not one). */
const contractScanners = new WeakSet<object>();

/** The scan contexts {@link defineScanner} built: their signal fires at their deadline. */
const contractContexts = new WeakSet<object>();

/**
 * True when `context` is the one {@link defineScanner} handed a backend's `scan` (by identity),
 * while that scan runs: its signal already fires on the caller's abort and at the deadline, so
 * a client given it (`ClamdClient.scan`) may use the signal as it is. An object of the same
 * shape made elsewhere, or a context kept after its scan settled, is not one: its deadline must
 * still be enforced.
 */
export function isScanContext(context: unknown): context is ScanContext {
  return typeof context === "object" && context !== null && contractContexts.has(context);
}

/**
 * True when `scanner` was built by this copy of {@link defineScanner}: it already validates
 * its inputs and its result, keeps its deadline and abort, and types its errors, so a caller
 * (a multi-engine) need not wrap it again.
 */
export function keepsContract(scanner: Scanner): boolean {
  return contractScanners.has(scanner);
}

function isArtifact(value: unknown): value is Artifact {
  const candidate = value as Partial<Artifact> | null;
  return (
    typeof candidate === "object" &&
    candidate !== null &&
    typeof candidate.bytes === "function" &&
    typeof candidate.stream === "function"
  );
}

/**
 * Builds a {@link Scanner} that keeps the contract for you, from a backend's `scan` and
 * optional `setup`/`close`:
 * - validates the artifact and the scan options (typed `InvalidOptionsError`);
 * - fails fast on an already aborted signal or a past deadline;
 * - sets up lazily, serialises `setup`/`close` so repeated and interleaved calls are safe;
 * - rejects with `ScanAbortedError`/`ScanTimeoutError` as soon as the signal or deadline
 *   fires, even when the backend ignores its signal;
 * - validates the result against `scanResultSchema` (`InvalidResultError` otherwise);
 * - wraps any non-engine error in an `EngineError` naming the scanner, never a verdict.
 */
export function defineScanner(definition: ScannerDefinition): Scanner {
  const name = nameSchema.safeParse(definition.name);
  if (!name.success) {
    throw new InvalidOptionsError({
      message: `@engine/core: invalid scanner name ${JSON.stringify(definition.name)}: ${z.prettifyError(name.error)}`,
    });
  }
  const scannerName = name.data;
  let ready = false;
  let queue: Promise<unknown> = Promise.resolve();

  const enqueue = (task: () => Promise<void>): Promise<void> => {
    const run = queue.then(task, task);
    queue = run.catch(() => {});
    return run;
  };

  const setup = (): Promise<void> =>
    enqueue(async () => {
      if (ready) return;
      try {
        await definition.setup?.();
      } catch (error) {
        if (EngineError.isInstance(error)) throw stampScannerName(error, scannerName);
        throw new BackendUnavailableError({
          message: `@engine/core: ${scannerName} failed to set up: ${(error as Error)?.message ?? String(error)}`,
          hint: "Check that the backend is installed, running and configured.",
          cause: error,
          scanner: scannerName,
        });
      }
      ready = true;
    });

  const close = (): Promise<void> =>
    enqueue(async () => {
      if (!ready) return;
      ready = false;
      await definition.close?.();
    });

  const scan = async (artifact: Artifact, options?: ScanOptions): Promise<ScanResult> => {
    if (!isArtifact(artifact)) {
      throw new InvalidOptionsError({
        message: `@engine/core: ${scannerName}.scan expects an Artifact (artifactFromBytes, artifactFromFile, ...)`,
        scanner: scannerName,
      });
    }
    const parsedOptions = scanOptionsSchema.safeParse(options);
    if (!parsedOptions.success) {
      throw new InvalidOptionsError({
        message: `@engine/core: ${scannerName}.scan: invalid options: ${z.prettifyError(parsedOptions.error)}`,
        cause: parsedOptions.error,
        scanner: scannerName,
      });
    }
    using stop = createScanSignal({ ...parsedOptions.data, scanner: scannerName });
    stop.throwIfStopped();
    try {
      if (!ready) await raceSignal(setup(), stop.signal, scannerName);
      // Frozen (its signal cannot be swapped) and trusted only while this scan runs: once it
      // settles, its signal no longer fires at the deadline (the timer is cleared).
      const context: ScanContext = Object.freeze({
        signal: stop.signal,
        deadline: stop.deadline,
        remainingMs: stop.remainingMs,
      });
      contractContexts.add(context);
      try {
        const result = await raceSignal(
          Promise.resolve().then(() => definition.scan(artifact, context)),
          stop.signal,
          scannerName,
        );
        return parseScanResult(result, scannerName);
      } finally {
        contractContexts.delete(context);
      }
    } catch (error) {
      if (stop.signal.aborted) throw errorFromSignal(stop.signal, scannerName);
      if (EngineError.isInstance(error)) throw stampScannerName(error, scannerName);
      throw new EngineError({
        message: `@engine/core: ${scannerName} failed: ${(error as Error)?.message ?? String(error)}`,
        cause: error,
        scanner: scannerName,
      });
    }
  };

  const scanner: Scanner = {
    name: scannerName,
    scan,
    setup,
    close,
    [Symbol.asyncDispose]: close,
  };
  contractScanners.add(scanner);
  return scanner;
}
