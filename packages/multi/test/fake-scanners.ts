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

/** A backend whose `setup` hangs, and what the multi did with it. */
export interface StuckInSetup extends Scanner {
  /** How many times its `setup` was called. */
  readonly setups: number;
  /** How many times its `close` was called. */
  readonly closes: number;
}

/**
 * A backend whose `setup` does not finish for `setupMs` (default: never), like a clamd stopped
 * before the first scan (it accepts connections and never answers), and answers `answer` once
 * set up. `contract: true` builds it with `defineScanner` (it sets itself up inside its own
 * scan); otherwise it is a plain object that throws when scanned before its setup finished.
 */
export function stuckInSetup(
  name: string,
  answer: ScanResult,
  options: { contract: boolean; setupMs?: number },
): StuckInSetup {
  const state = { setups: 0, closes: 0, ready: false };
  const setup = (): Promise<void> => {
    state.setups += 1;
    const { setupMs } = options;
    if (setupMs === undefined) return new Promise<void>(() => {});
    return new Promise<void>((resolve) => setTimeout(resolve, setupMs)).then(() => {
      state.ready = true;
    });
  };
  const close = async (): Promise<void> => {
    state.closes += 1;
    state.ready = false;
  };
  const scan = async (): Promise<ScanResult> => {
    if (!state.ready) throw new Error(`${name} was scanned before its setup finished`);
    return answer;
  };
  const scanner: Scanner = options.contract
    ? defineScanner({ name, setup, close, scan })
    : { name, setup, close, scan, [Symbol.asyncDispose]: close };
  return Object.defineProperties(scanner, {
    setups: { get: () => state.setups, enumerable: true },
    closes: { get: () => state.closes, enumerable: true },
  }) as StuckInSetup;
}
