import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Artifact,
  artifactFromBytes,
  artifactFromFile,
  artifactFromStream,
} from "../artifact.js";
import { eicarBytes } from "../eicar.js";
import { EngineError } from "../errors/engine-error.js";
import { ScanAbortedError } from "../errors/scan-aborted-error.js";
import { ScanTimeoutError } from "../errors/scan-timeout-error.js";
import { type ScanResult, scanResultSchema } from "../scan-result.js";
import type { Scanner, ScanOptions } from "../scanner.js";
import {
  cleanArtifact,
  cleanBytes,
  eicarArtifact,
  largeStreamArtifact,
  stalledStreamArtifact,
} from "./test-artifacts.js";

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

function fail(message: string, cause?: unknown): never {
  throw new ConformanceError(message, cause === undefined ? undefined : { cause });
}

type Settled<T> =
  | { status: "resolved"; value: T; elapsedMs: number }
  | { status: "rejected"; error: unknown; elapsedMs: number }
  | { status: "pending"; elapsedMs: number };

async function settleWithin<T>(promise: Promise<T>, milliseconds: number): Promise<Settled<T>> {
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

async function withScanner(
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

function describeResult(result: unknown): string {
  return JSON.stringify(result)?.slice(0, 300) ?? String(result);
}

function assertValid(result: unknown, what: string): ScanResult {
  const parsed = scanResultSchema.safeParse(result);
  if (!parsed.success)
    fail(`${what}: the result does not match scanResultSchema: ${parsed.error.message}`);
  return parsed.data;
}

function assertVerdict(result: unknown, expected: ScanResult["verdict"], what: string): ScanResult {
  const valid = assertValid(result, what);
  if (valid.verdict !== expected) {
    fail(
      `${what}: expected verdict "${expected}", got "${valid.verdict}" (${describeResult(result)})`,
    );
  }
  return valid;
}

async function expectStopped(
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

async function expectScanWorks(scanner: Scanner, what: string): Promise<void> {
  assertVerdict(
    await scanner.scan(cleanArtifact(`after ${what}`)),
    "benign",
    `a clean scan after ${what}`,
  );
}

const stopWithin = (subject: ConformanceSubject): number => subject.options.stopWithinMs ?? 2000;

/** Every check of the conformance suite, in order. */
export const conformanceChecks: readonly ConformanceCheck[] = [
  {
    group: "eicar",
    name: "detects the EICAR test file in memory and on disk as malicious",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const inMemory = assertVerdict(
          await scanner.scan(eicarArtifact()),
          "malicious",
          "EICAR in memory",
        );
        if (inMemory.confidence <= 0)
          fail("EICAR in memory: a malicious verdict needs a confidence above 0");
        if (inMemory.metadata.malware_family.length === 0)
          fail("EICAR in memory: malware_family is empty");
        const directory = await mkdtemp(join(tmpdir(), "engine-conformance-"));
        try {
          const path = join(directory, "eicar.com");
          await writeFile(path, eicarBytes());
          assertVerdict(
            await scanner.scan(artifactFromFile(path)),
            "malicious",
            "EICAR from a file",
          );
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
      }),
  },
  {
    group: "clean",
    name: "answers benign for clean content from bytes, a file and a stream",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        assertVerdict(await scanner.scan(cleanArtifact("bytes")), "benign", "clean bytes");
        const directory = await mkdtemp(join(tmpdir(), "engine-conformance-"));
        try {
          const path = join(directory, "clean.txt");
          await writeFile(path, cleanBytes("file"));
          assertVerdict(await scanner.scan(artifactFromFile(path)), "benign", "a clean file");
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
        const stream = artifactFromStream(
          [cleanBytes("stream, part 1"), cleanBytes("stream, part 2")].values(),
        );
        assertVerdict(await scanner.scan(stream), "benign", "a clean stream");
      }),
  },
  {
    group: "schema",
    name: "returns results that match scanResultSchema",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        assertValid(await scanner.scan(cleanArtifact("schema")), "a clean scan");
        if (subject.options.detectsEicar !== false)
          assertValid(await scanner.scan(eicarArtifact()), "an EICAR scan");
        if (typeof scanner.name !== "string" || scanner.name.length === 0)
          fail("the scanner has no name");
      }),
  },
  {
    group: "abort",
    name: "rejects promptly with ScanAbortedError when the signal is already aborted",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const controller = new AbortController();
        controller.abort();
        const options = { signal: controller.signal };
        await expectStopped(
          scanner,
          cleanArtifact(),
          options,
          ScanAbortedError,
          stopWithin(subject),
          "a pre-aborted scan",
        );
      }),
  },
  {
    group: "abort",
    name: "stops a running scan with ScanAbortedError when the signal fires, and still works afterwards",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), 200);
        try {
          await expectStopped(
            scanner,
            stalledStreamArtifact(),
            { signal: controller.signal },
            ScanAbortedError,
            200 + stopWithin(subject),
            "a scan aborted while running",
          );
        } finally {
          clearTimeout(timer);
        }
        await expectScanWorks(scanner, "an aborted scan");
      }),
  },
  {
    group: "deadline",
    name: "rejects promptly with ScanTimeoutError when the deadline has passed",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const options = { deadline: Date.now() - 1 };
        await expectStopped(
          scanner,
          cleanArtifact(),
          options,
          ScanTimeoutError,
          stopWithin(subject),
          "a past deadline",
        );
      }),
  },
  {
    group: "deadline",
    name: "stops a running scan with ScanTimeoutError at its deadline, and still works afterwards",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const options = { deadline: Date.now() + 300 };
        await expectStopped(
          scanner,
          stalledStreamArtifact(),
          options,
          ScanTimeoutError,
          300 + stopWithin(subject),
          "a scan past its deadline",
        );
        await expectScanWorks(scanner, "a timed-out scan");
      }),
  },
  {
    group: "lifecycle",
    name: "survives setup and close called repeatedly, interleaved and concurrently",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        await scanner.setup?.();
        await scanner.setup?.();
        await expectScanWorks(scanner, "setup twice");
        await scanner.close?.();
        await scanner.close?.();
        await scanner.setup?.();
        await expectScanWorks(scanner, "close twice then setup");
        await scanner.close?.();
        await expectScanWorks(scanner, "close then a scan without setup");
        await Promise.all([
          scanner.setup?.(),
          scanner.close?.(),
          scanner.setup?.(),
          scanner.setup?.(),
        ]);
        await expectScanWorks(scanner, "concurrent setup and close");
        await scanner[Symbol.asyncDispose]();
        await scanner[Symbol.asyncDispose]();
        await expectScanWorks(scanner, "asyncDispose twice");
      }),
  },
  {
    group: "concurrency",
    name: "gives each of many concurrent scans its own answer",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const count = subject.options.concurrentScans ?? 8;
        const detects = subject.options.detectsEicar !== false;
        const expected = Array.from({ length: count }, (_, index) =>
          detects && index % 2 === 0 ? ("malicious" as const) : ("benign" as const),
        );
        const results = await Promise.all(
          expected.map((verdict, index) =>
            scanner.scan(
              verdict === "malicious" ? eicarArtifact() : cleanArtifact(`concurrent ${index}`),
            ),
          ),
        );
        results.forEach((result, index) => {
          assertVerdict(result, expected[index] ?? "benign", `concurrent scan ${index}`);
        });
      }),
  },
  {
    group: "unreachable",
    name: "throws a typed engine error, never a verdict, when the backend is unreachable",
    run: async (subject) => {
      const { createUnreachableScanner } = subject.options;
      if (!createUnreachableScanner)
        fail("createUnreachableScanner is required for the unreachable group");
      const within = subject.options.unreachableWithinMs ?? 10_000;
      await withScanner(
        { ...subject, createScanner: createUnreachableScanner },
        async (scanner) => {
          const setup = await settleWithin(Promise.resolve(scanner.setup?.()), within);
          if (setup.status === "rejected" && !EngineError.isInstance(setup.error)) {
            fail(
              `setup of an unreachable backend rejected with an untyped error: ${String(setup.error)}`,
              setup.error,
            );
          }
          for (const [what, artifact] of [
            ["a clean artifact", cleanArtifact("unreachable")],
            ["the EICAR file", eicarArtifact()],
          ] as const) {
            const outcome = await settleWithin(scanner.scan(artifact), within);
            if (outcome.status === "pending")
              fail(`scanning ${what} with the backend down did not fail within ${within} ms`);
            if (outcome.status === "resolved") {
              fail(
                `scanning ${what} with the backend down answered ${describeResult(outcome.value)} instead of throwing`,
              );
            }
            if (!EngineError.isInstance(outcome.error)) {
              fail(
                `scanning ${what} with the backend down threw an untyped error: ${String(outcome.error)}`,
                outcome.error,
              );
            }
          }
        },
      );
    },
  },
  {
    group: "empty",
    name: "answers benign for a 0-byte artifact, in memory and as a stream",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        assertVerdict(
          await scanner.scan(artifactFromBytes(new Uint8Array(0))),
          "benign",
          "0 bytes in memory",
        );
        assertVerdict(
          await scanner.scan(artifactFromStream([].values())),
          "benign",
          "an empty stream",
        );
      }),
  },
  {
    group: "large",
    name: "scans a large streamed artifact (clean, and with EICAR at its very end)",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const size = subject.options.largeArtifactBytes ?? 32 * 1024 * 1024;
        assertVerdict(
          await scanner.scan(largeStreamArtifact(size)),
          "benign",
          `a clean ${size}-byte stream`,
        );
        const detects =
          subject.options.detectsEicarInLargeArtifacts ?? subject.options.detectsEicar !== false;
        if (detects) {
          const artifact = largeStreamArtifact(size, { endWithEicar: true });
          assertVerdict(
            await scanner.scan(artifact),
            "malicious",
            `a ${size}-byte stream ending with EICAR`,
          );
        }
      }),
  },
];

/**
 * The checks that apply with these options: groups switched off are left out, `eicar` when
 * the backend does not detect it, `unreachable` without `createUnreachableScanner`.
 */
export function enabledChecks(
  options: ConformanceOptions,
): { check: ConformanceCheck; enabled: boolean }[] {
  return conformanceChecks.map((check) => {
    let enabled = options.groups?.[check.group] !== false;
    if (check.group === "eicar" && options.detectsEicar === false) enabled = false;
    if (check.group === "unreachable" && !options.createUnreachableScanner) enabled = false;
    return { check, enabled };
  });
}
