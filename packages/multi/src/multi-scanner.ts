import {
  type Artifact,
  type BackendProvenance,
  BackendUnavailableError,
  createScanSignal,
  defineScanner,
  type EngineError,
  InvalidOptionsError,
  InvalidResultError,
  keepsContract,
  parseOptions,
  parseScanResult,
  publicError,
  raceSignal,
  type Scanner,
  type ScanResult,
  verdictMetadata,
  verdictSchema,
} from "@engine/core";
import { SpanStatusCode, trace } from "@opentelemetry/api";
import { z } from "zod";
import { asEngineError } from "./as-engine-error.js";
import { answered, type BackendOutcome, failed } from "./backend-outcome.js";
import { trackBackendSetups } from "./backend-setups.js";
import { type MultiScannerOptions, multiScannerOptionsSchema } from "./multi-scanner-options.js";
import { shareArtifact } from "./shared-artifact.js";
import { namedPolicies, type VerdictPolicy } from "./verdict-policy.js";
import { multiPackageVersion } from "./version.js";

/** Spans through @opentelemetry/api only: without a registered tracer provider they cost nothing. */
const tracer = trace.getTracer("@engine/multi", multiPackageVersion);

/** A multi-engine: a `Scanner` made of scanners. */
export interface MultiScanner extends Scanner {
  /** The backends, in the order given. */
  readonly backends: readonly Scanner[];
  /**
   * Backends whose latest setup failed, or had not finished within the budget of the scan or
   * `setup()` that waited for it (`SCAN_TIMEOUT`), with why; an entry goes when that backend's
   * setup succeeds. Filled by `setup()` and by scans alike. The multi works with the others.
   */
  readonly setupFailures: ReadonlyMap<string, EngineError>;
}

type AnsweredOutcome = Extract<BackendOutcome, { status: "answered" }>;

/** A backend that answered but gave no verdict: `unknown`, e.g. it could not look inside. */
function isInconclusive(outcome: AnsweredOutcome): boolean {
  return outcome.result.verdict === "unknown";
}

/** The first `SKIPPED:*` or `ERROR:*` comment of an answer (`SKIPPED:ENCRYPTED`), if any. */
function inconclusiveReason(outcome: AnsweredOutcome): string | undefined {
  return outcome.result.metadata.comments?.find((comment) => /^(SKIPPED|ERROR):/.test(comment));
}

const policyResultSchema = z.object({
  verdict: verdictSchema,
  confidence: z.number().min(0).max(1),
});

/**
 * Combines scanners into one scanner. Backends scan concurrently, each within its own budget
 * inside the caller's deadline, and the answer comes by the deadline even if a backend hangs
 * and ignores its signal. The policy (`any` by default) combines the answers, then the
 * fail-closed rules apply to every policy:
 * - `benign` only when every backend looked: a backend that failed, or answered `unknown` (it
 *   could not look inside: an encrypted archive, a limit hit), turns `benign` into `unknown`,
 *   with comments naming them (`SKIPPED:ENCRYPTED`, `INCOMPLETE: ...`); a `malicious` answer
 *   still wins under `any`. `benignWhenInconclusive: true` opts out for `unknown` answers;
 *   failures always count;
 * - when every backend failed, the scan throws (the shared error, or `BackendUnavailableError`).
 *
 * Each backend is set up once, before its first scan, and its setup counts against its budget
 * (`backendTimeoutMs`, inside the caller's deadline): a backend whose setup has not finished
 * by then (a stopped clamd accepts connections and never answers) counts as failed for that
 * scan (`SCAN_TIMEOUT`, "did not finish setting up") while the others answer; its setup goes
 * on, and a later scan waits for it again within its own budget. `setup()` sets up every
 * backend, waiting for each at most its `backendTimeoutMs`, and never holds a scan. `close()`
 * closes the backends in parallel and does not wait for a setup that has not finished: that
 * backend is closed once its setup settles.
 *
 * `metadata.backends` keeps one entry per backend (name, verdict, confidence, family, duration,
 * error code and public reason, `inconclusive` with its reason); full errors go to
 * `onBackendError` for your logs. `malware_family` comes from the most confident detecting backend (ties: order
 * given). Artifacts are read once: streams are buffered (small) or spooled to a temp file.
 *
 * @example
 * const engine = createMultiScanner([createClamavScanner({ socket }), createYaraScanner({ rulesDir })], {
 *   policy: quorum(1),
 *   backendTimeoutMs: { clamav: 5_000 },
 * });
 */
export function createMultiScanner(
  scanners: readonly Scanner[],
  options?: MultiScannerOptions,
): MultiScanner {
  const settings = parseOptions(multiScannerOptionsSchema, options, {
    where: "@engine/multi: createMultiScanner",
  });
  if (!Array.isArray(scanners) || scanners.length === 0) {
    throw new InvalidOptionsError({
      message: "@engine/multi: createMultiScanner needs at least one scanner",
    });
  }
  const names = scanners.map((scanner) => scanner?.name);
  const duplicate = names.find((name, index) => names.indexOf(name) !== index);
  if (names.some((name) => typeof name !== "string") || duplicate !== undefined) {
    throw new InvalidOptionsError({
      message: `@engine/multi: every backend needs a distinct name${duplicate ? ` (${duplicate} is given twice)` : ""}`,
      hint: "Give the backends names, e.g. createYaraScanner({ name: 'yara-extra' }).",
    });
  }
  const policy: VerdictPolicy =
    typeof settings.policy === "function" ? settings.policy : namedPolicies[settings.policy];
  const budget = (name: string): number | undefined =>
    typeof settings.backendTimeoutMs === "number"
      ? settings.backendTimeoutMs
      : settings.backendTimeoutMs && Object.hasOwn(settings.backendTimeoutMs, name)
        ? settings.backendTimeoutMs[name]
        : undefined;
  const setups = trackBackendSetups();

  /** One backend's scan as a span (`scan <backend>`): a no-op unless the host registered a tracer. */
  const runBackend = (
    backend: Scanner,
    artifact: Artifact,
    signal: AbortSignal,
    deadline: number | undefined,
  ): Promise<BackendOutcome> =>
    tracer.startActiveSpan(
      `scan ${backend.name}`,
      { attributes: { "engine.backend": backend.name, "engine.multi": settings.name } },
      async (span) => {
        try {
          const outcome = await scanBackend(backend, artifact, signal, deadline);
          if (outcome.status === "answered") {
            span.setAttribute("engine.verdict", outcome.result.verdict);
            if (outcome.result.metadata.malware_family)
              span.setAttribute("engine.malware_family", outcome.result.metadata.malware_family);
          } else {
            span.setAttribute("engine.verdict", "unknown");
            span.setAttribute("engine.error_code", outcome.error.code);
            span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.code });
          }
          return outcome;
        } finally {
          span.end();
        }
      },
    );

  /** A backend's deadline: its budget from now, inside the caller's deadline less the margin. */
  const deadlineOf = (name: string, deadline: number | undefined): number | undefined => {
    const own = budget(name);
    const limits = [
      deadline === undefined ? undefined : deadline - settings.deadlineMarginMs,
      own === undefined ? undefined : Date.now() + own,
    ].filter((limit): limit is number => limit !== undefined);
    return limits.length > 0 ? Math.min(...limits) : undefined;
  };

  /** Waits for a backend's setup until its deadline or the signal: a hung setup holds no more. */
  const waitForSetup = async (
    backend: Scanner,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
  ): Promise<void> => {
    if (setups.isReady(backend)) return;
    using stop = createScanSignal({ signal, deadline, scanner: backend.name });
    await setups.waitFor(backend, stop.signal);
  };

  const scanBackend = async (
    backend: Scanner,
    artifact: Artifact,
    signal: AbortSignal,
    deadline: number | undefined,
  ): Promise<BackendOutcome> => {
    const started = performance.now();
    const backendDeadline = deadlineOf(backend.name, deadline);
    try {
      await waitForSetup(backend, signal, backendDeadline);
      // Built by defineScanner: it keeps its deadline and abort and validates its result
      // itself; wrapping it again would only cost a second signal and a second validation.
      const result = keepsContract(backend)
        ? await backend.scan(artifact, { signal, deadline: backendDeadline })
        : await scanPlain(backend, artifact, signal, backendDeadline);
      return {
        name: backend.name,
        status: "answered",
        result,
        durationMs: performance.now() - started,
      };
    } catch (error) {
      return failedOutcome(backend, error, started);
    }
  };

  /** A hand-written backend's scan, held to its deadline and validated. */
  const scanPlain = async (
    backend: Scanner,
    artifact: Artifact,
    signal: AbortSignal,
    deadline: number | undefined,
  ): Promise<ScanResult> => {
    using stop = createScanSignal({ signal, deadline, scanner: backend.name });
    const result = await raceSignal(
      Promise.resolve().then(() => backend.scan(artifact, { signal: stop.signal, deadline })),
      stop.signal,
      backend.name,
    );
    return parseScanResult(result, backend.name);
  };

  /** A backend's failure as its outcome (typed, named, reported to `onBackendError`). */
  const failedOutcome = (backend: Scanner, error: unknown, started: number): BackendOutcome => {
    const failure = asEngineError(error, backend.name);
    try {
      settings.onBackendError?.(backend.name, failure);
    } catch {
      // A logging hook must not change the answer.
    }
    return {
      name: backend.name,
      status: "failed",
      error: failure,
      durationMs: performance.now() - started,
    };
  };

  const provenance = (outcome: BackendOutcome): BackendProvenance => {
    const durationMs = Math.round(outcome.durationMs * 1000) / 1000;
    if (outcome.status === "failed") {
      return {
        name: outcome.name,
        verdict: "unknown",
        confidence: 0,
        malware_family: "",
        duration_ms: durationMs,
        error_code: outcome.error.code,
        error: publicError(outcome.error).message,
      };
    }
    const reason = isInconclusive(outcome) ? inconclusiveReason(outcome) : undefined;
    return {
      name: outcome.name,
      verdict: outcome.result.verdict,
      confidence: outcome.result.confidence,
      malware_family: outcome.result.metadata.malware_family,
      duration_ms: durationMs,
      ...(isInconclusive(outcome) ? { inconclusive: true } : {}),
      ...(reason ? { reason } : {}),
      metadata: outcome.result.metadata,
    };
  };

  const synthesize = (outcomes: BackendOutcome[]): ScanResult => {
    const working = answered(outcomes);
    const broken = failed(outcomes);
    if (working.length === 0) {
      const [first] = broken;
      const sameCode = broken.every((outcome) => outcome.error.code === first?.error.code);
      if (first && sameCode) throw first.error;
      throw new BackendUnavailableError({
        message: `@engine/multi: every backend failed: ${broken.map((outcome) => `${outcome.name} (${outcome.error.code}: ${outcome.error.message})`).join("; ")}`,
        hint: "Check the backends: none could answer.",
        cause: new AggregateError(broken.map((outcome) => outcome.error)),
        scanner: settings.name,
      });
    }
    const decided = policyResultSchema.safeParse(policy(outcomes));
    if (!decided.success) {
      throw new InvalidResultError({
        message: `@engine/multi: the verdict policy returned an invalid answer: ${z.prettifyError(decided.error)}`,
        hint: "A policy returns { verdict: 'malicious' | 'benign' | 'suspicious' | 'unknown', confidence: 0..1 }.",
        scanner: settings.name,
      });
    }
    let { verdict, confidence } = decided.data;
    const builder = verdictMetadata();
    const inconclusive = working.filter(isInconclusive);
    const blind = settings.benignWhenInconclusive ? [] : inconclusive;
    // Fail closed: a backend that could not answer, or could not look inside, might have
    // detected something. Benign only when every backend looked and said so.
    const failClosed = (broken.length > 0 || blind.length > 0) && verdict === "benign";
    if (failClosed) {
      verdict = "unknown";
      confidence = 0;
    }
    if (verdict === "unknown") {
      // Whoever decided unknown (fail-closed or the policy), the first comment says why.
      const skipped = inconclusive
        .map(inconclusiveReason)
        .find((reason) => reason?.startsWith("SKIPPED:"));
      if (skipped) builder.comment(skipped);
      const missing = [
        ...broken.map((outcome) => `${outcome.name} failed (${outcome.error.code})`),
        ...(failClosed ? blind : inconclusive).map((outcome) => {
          const reason = inconclusiveReason(outcome);
          return `${outcome.name} could not look inside${reason ? ` (${reason})` : ""}`;
        }),
      ];
      if (failClosed)
        builder.comment(`INCOMPLETE: ${missing.join(", ")}; no other backend detected anything`);
      else if (missing.length > 0) builder.comment(`INCOMPLETE: ${missing.join(", ")}`);
    }
    const detecting = working.filter(
      (outcome) =>
        outcome.result.verdict === verdict && (verdict === "malicious" || verdict === "suspicious"),
    );
    const best = detecting.reduce<(typeof detecting)[number] | undefined>(
      (winner, candidate) =>
        winner === undefined || candidate.result.confidence > winner.result.confidence
          ? candidate
          : winner,
      undefined,
    );
    const versions = (key: "vendor_version" | "signatures_version"): string =>
      working
        .map((outcome) => [outcome.name, outcome.result.metadata.scanner?.[key]] as const)
        .filter(([, value]) => typeof value === "string" && value.length > 0)
        .map(([name, value]) => `${name}:${value}`)
        .join(";");
    const vendorVersion = versions("vendor_version");
    const signaturesVersion = versions("signatures_version");
    const metadata = builder
      .malwareFamily(best?.result.metadata.malware_family ?? "")
      .product(settings.name)
      .scanner({
        version: multiPackageVersion,
        ...(vendorVersion ? { vendor_version: vendorVersion } : {}),
        ...(signaturesVersion ? { signatures_version: signaturesVersion } : {}),
      })
      .set("backends", outcomes.map(provenance))
      .build();
    return { verdict, confidence, metadata };
  };

  /** Sets up every backend, waiting for each at most its `backendTimeoutMs`. */
  const setUpAll = async (): Promise<void> => {
    const settled = await Promise.allSettled(
      scanners.map((backend) => {
        const own = budget(backend.name);
        return waitForSetup(backend, undefined, own === undefined ? undefined : Date.now() + own);
      }),
    );
    const errors = settled.flatMap((outcome, index) =>
      outcome.status === "rejected"
        ? [asEngineError(outcome.reason, scanners[index]?.name ?? settings.name)]
        : [],
    );
    if (errors.length === scanners.length) {
      throw new BackendUnavailableError({
        message: `@engine/multi: no backend could be set up: ${errors.map((error) => `${error.scanner} (${error.message})`).join("; ")}`,
        hint: "Check the backends: none could start.",
        cause: new AggregateError(errors),
        scanner: settings.name,
      });
    }
  };

  // No setup here: the contract's lazy setup would hold every scan until all backends are set
  // up. Each backend is set up before its own scan, within its own budget (scanBackend).
  const scanner = defineScanner({
    name: settings.name,
    scan: async (artifact, { signal, deadline }) => {
      const shared = await shareArtifact(artifact, {
        memoryLimitBytes: settings.memoryLimitBytes,
        temporaryDirectory: settings.temporaryDirectory,
        signal,
      });
      try {
        const outcomes = await Promise.all(
          scanners.map((backend) => runBackend(backend, shared.artifact, signal, deadline)),
        );
        return synthesize(outcomes);
      } finally {
        await shared.dispose();
      }
    },
  });

  // The multi owns its backends: closing it closes them, even when it never scanned (backends
  // set up on their own, or by a scan that never came, must not keep workers or sockets open).
  const closeContract = scanner.close;
  const close = async (): Promise<void> => {
    // In parallel, and without waiting for a setup that has not finished (a stopped clamd may
    // never answer): that backend is closed once its setup settles, and the others at once.
    await Promise.allSettled([
      closeContract?.(),
      ...scanners.map((backend) => setups.close(backend)),
    ]);
  };
  return Object.defineProperties(scanner, {
    setup: { value: setUpAll, enumerable: true },
    close: { value: close, enumerable: true },
    [Symbol.asyncDispose]: { value: close },
    backends: { value: Object.freeze([...scanners]), enumerable: true },
    setupFailures: { get: () => setups.failures, enumerable: true },
  }) as MultiScanner;
}
