import type { Scanner, ScanResult } from "@engine/core";
import type { SignatureCoverage } from "../protocol/coverage.js";
import type { EngineBackend } from "./backend-kind.js";

/**
 * The engine's coverage: `signatures` when at least one running backend has real signatures
 * (a backend that does not say, a third-party module, counts as real); `test-signatures` when
 * every one has test signatures only (or none runs).
 */
export function engineCoverage(
  running: readonly Pick<EngineBackend, "coverage">[],
): SignatureCoverage {
  return running.some((backend) => (backend.coverage?.() ?? "signatures") === "signatures")
    ? "signatures"
    : "test-signatures";
}

/**
 * The coverage behind one answer: `signatures` only when a backend with real signatures gave a
 * conclusive opinion in it (its entry in `metadata.backends` is not `unknown`): a benign answer
 * from YARA's bundled rule while ClamAV, the one with a real database, could not scan (clamd
 * away, a size limit, an encrypted archive) rests on test signatures. Without per-backend
 * entries (a scanner that is not a multi-engine), the engine's coverage.
 */
export function resultCoverage(
  result: ScanResult,
  running: readonly Pick<EngineBackend, "name" | "coverage">[],
): SignatureCoverage {
  const opinions = result.metadata.backends;
  if (!opinions) return engineCoverage(running);
  const real = new Set(
    running
      .filter((backend) => (backend.coverage?.() ?? "signatures") === "signatures")
      .map((backend) => backend.name),
  );
  return opinions.some((opinion) => real.has(opinion.name) && opinion.verdict !== "unknown")
    ? "signatures"
    : "test-signatures";
}

/**
 * An answer as the engine's coverage allows: `metadata.coverage` set, and with test signatures
 * only a `benign` answer's confidence 0 (not matching a test sample is no evidence of being
 * clean). Other verdicts are kept: an EICAR match is certain whatever else is loaded.
 */
export function withCoverage(result: ScanResult, coverage: SignatureCoverage): ScanResult {
  const lowered = coverage === "test-signatures" && result.verdict === "benign";
  return {
    ...result,
    ...(lowered ? { confidence: 0 } : {}),
    metadata: { ...result.metadata, coverage },
  };
}

/**
 * `scanner` whose answers state the coverage behind them ({@link resultCoverage}), with the
 * backends' coverage at the time of each answer (reloads may change it): see
 * {@link withCoverage}. Outside the result cache, so that a cached answer says the coverage of now.
 */
export function scannerWithCoverage(
  scanner: Scanner,
  running: readonly Pick<EngineBackend, "name" | "coverage">[],
): Scanner {
  return {
    name: scanner.name,
    scan: async (artifact, options) => {
      const result = await scanner.scan(artifact, options);
      return withCoverage(result, resultCoverage(result, running));
    },
    ...(scanner.setup ? { setup: () => scanner.setup?.() ?? Promise.resolve() } : {}),
    ...(scanner.close ? { close: () => scanner.close?.() ?? Promise.resolve() } : {}),
    get signaturesVersion() {
      return scanner.signaturesVersion;
    },
    [Symbol.asyncDispose]: () => scanner[Symbol.asyncDispose](),
  };
}
