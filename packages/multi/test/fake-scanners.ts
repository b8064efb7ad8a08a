import {
  type Artifact,
  BackendUnavailableError,
  defineScanner,
  type EngineError,
  type Scanner,
  type ScanResult,
  type Verdict,
} from "@engine/core";

/** A result with the given verdict, confidence and family. */
export function result(verdict: Verdict, confidence = 1, family = ""): ScanResult {
  return {
    verdict,
    confidence,
    metadata: { malware_family: family, scanner: { vendor_version: "1.0" } },
  };
}

/** A backend that answers `answer` (or what `answer(artifact)` returns) after `delayMs`. */
export function answering(
  name: string,
  answer: ScanResult | ((artifact: Artifact) => Promise<ScanResult> | ScanResult),
  delayMs = 0,
): Scanner {
  return defineScanner({
    name,
    scan: async (artifact, { signal }) => {
      if (delayMs > 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, delayMs);
          signal.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(signal.reason);
          });
        });
      }
      return typeof answer === "function" ? answer(artifact) : answer;
    },
  });
}

/** A backend whose scans fail with `error` (default: unavailable). */
export function throwing(name: string, error?: EngineError): Scanner {
  return defineScanner({
    name,
    scan: async () => {
      throw error ?? new BackendUnavailableError({ message: `${name} is down`, scanner: name });
    },
  });
}

/** A hand-written backend that never answers and ignores its signal. */
export function hanging(name: string): Scanner {
  return { name, scan: () => new Promise(() => {}), [Symbol.asyncDispose]: async () => {} };
}

/** A hand-written backend that returns something that is not a ScanResult. */
export function invalid(name: string): Scanner {
  return {
    name,
    scan: async () => ({ verdict: "clean", confidence: 7 }) as unknown as ScanResult,
    [Symbol.asyncDispose]: async () => {},
  };
}
