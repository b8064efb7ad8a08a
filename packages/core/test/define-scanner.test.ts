import { describe, expect, it, vi } from "vitest";
import {
  artifactFromBytes,
  BackendUnavailableError,
  defineScanner,
  EngineError,
  InvalidOptionsError,
  InvalidResultError,
  isScanContext,
  keepsContract,
  ScanAbortedError,
  type ScanContext,
  ScanTimeoutError,
} from "../src/index.js";

const benign = { verdict: "benign" as const, confidence: 1, metadata: { malware_family: "" } };

describe("defineScanner", () => {
  it("sets up lazily once and closes once per setup, whatever the call order", async () => {
    const setup = vi.fn(async () => {});
    const close = vi.fn(async () => {});
    const scanner = defineScanner({ name: "counted", scan: async () => benign, setup, close });
    await scanner.close?.();
    expect(close).not.toHaveBeenCalled();
    await Promise.all([scanner.scan(artifactFromBytes("a")), scanner.scan(artifactFromBytes("b"))]);
    await scanner.setup?.();
    expect(setup).toHaveBeenCalledTimes(1);
    await Promise.all([scanner.close?.(), scanner.close?.()]);
    expect(close).toHaveBeenCalledTimes(1);
    await scanner.setup?.();
    await scanner[Symbol.asyncDispose]();
    expect(setup).toHaveBeenCalledTimes(2);
    expect(close).toHaveBeenCalledTimes(2);
  });

  it("turns a failing setup into BackendUnavailableError and retries it on the next call", async () => {
    let attempts = 0;
    const scanner = defineScanner({
      name: "flaky",
      scan: async () => benign,
      setup: async () => {
        attempts += 1;
        if (attempts === 1) throw new Error("ECONNREFUSED");
      },
    });
    const failure = scanner.scan(artifactFromBytes("x"));
    await expect(failure).rejects.toBeInstanceOf(BackendUnavailableError);
    await expect(failure).rejects.toThrow(/flaky failed to set up: ECONNREFUSED/);
    await expect(scanner.scan(artifactFromBytes("x"))).resolves.toEqual(benign);
  });

  it("validates the artifact and the options before calling the backend", async () => {
    const scan = vi.fn(async () => benign);
    const scanner = defineScanner({ name: "strict", scan });
    await expect(scanner.scan("not an artifact" as never)).rejects.toBeInstanceOf(
      InvalidOptionsError,
    );
    await expect(
      scanner.scan(artifactFromBytes("x"), { deadline: "soon" } as never),
    ).rejects.toThrow(/epoch milliseconds/);
    await expect(
      scanner.scan(artifactFromBytes("x"), { signal: {} } as never),
    ).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(
      scanner.scan(artifactFromBytes("x"), { timeout: 5 } as never),
    ).rejects.toBeInstanceOf(InvalidOptionsError);
    expect(scan).not.toHaveBeenCalled();
  });

  it("rejects an invalid result with InvalidResultError, never passes it on", async () => {
    const scanner = defineScanner({
      name: "liar",
      scan: async () => ({ verdict: "clean" }) as never,
    });
    await expect(scanner.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(InvalidResultError);
  });

  it("wraps untyped backend errors in an EngineError naming the scanner", async () => {
    const scanner = defineScanner({
      name: "buggy",
      scan: async () => {
        throw new TypeError("undefined is not a function");
      },
    });
    const error = await scanner.scan(artifactFromBytes("x")).catch((caught: unknown) => caught);
    expect(EngineError.isInstance(error)).toBe(true);
    expect((error as EngineError).scanner).toBe("buggy");
    expect((error as EngineError).cause).toBeInstanceOf(TypeError);
  });

  it("names itself on engine errors from inside that name no scanner, and keeps a name given", async () => {
    const anonymous = defineScanner({
      name: "yara-extra",
      scan: async () => {
        throw new BackendUnavailableError({ message: "the worker pool is gone" });
      },
    });
    const error = await anonymous.scan(artifactFromBytes("x")).catch((caught: unknown) => caught);
    expect((error as EngineError).scanner).toBe("yara-extra");
    expect((error as EngineError).toJSON()).toMatchObject({ scanner: "yara-extra" });
    const named = defineScanner({
      name: "outer",
      scan: async () => {
        throw new BackendUnavailableError({ message: "inner failed", scanner: "inner" });
      },
    });
    const kept = await named.scan(artifactFromBytes("x")).catch((caught: unknown) => caught);
    expect((kept as EngineError).scanner).toBe("inner");
  });

  it("passes a frozen engine error on unchanged (its code kept), never a TypeError", async () => {
    const frozen = Object.freeze(new BackendUnavailableError({ message: "gone" }));
    const scanner = defineScanner({
      name: "cold",
      scan: async () => {
        throw frozen;
      },
    });
    const error = await scanner.scan(artifactFromBytes("x")).catch((caught: unknown) => caught);
    expect(error).toBe(frozen);
    expect((error as EngineError).code).toBe("BACKEND_UNAVAILABLE");
  });

  it("is known as keeping the contract (keepsContract), and a copy or a plain object is not", () => {
    const defined = defineScanner({ name: "kept", scan: async () => benign });
    expect(keepsContract(defined)).toBe(true);
    expect(keepsContract({ ...defined })).toBe(false);
    expect(
      keepsContract({
        name: "plain",
        scan: async () => benign,
        [Symbol.asyncDispose]: async () => {},
      }),
    ).toBe(false);
  });

  it("keeps the deadline even when the backend ignores its signal", async () => {
    const scanner = defineScanner({ name: "deaf", scan: () => new Promise(() => {}) });
    const started = Date.now();
    await expect(
      scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 50 }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("hands the backend a signal that fires on the caller's abort", async () => {
    let seen: AbortSignal | undefined;
    const scanner = defineScanner({
      name: "listener",
      scan: (_artifact, { signal }) => {
        seen = signal;
        return new Promise(() => {});
      },
    });
    const controller = new AbortController();
    const scan = scanner.scan(artifactFromBytes("x"), { signal: controller.signal });
    await vi.waitFor(() => expect(seen).toBeDefined());
    controller.abort();
    await expect(scan).rejects.toBeInstanceOf(ScanAbortedError);
    expect(seen?.aborted).toBe(true);
  });

  it("refuses names that would break metadata and metrics", () => {
    expect(() => defineScanner({ name: "has space", scan: async () => benign })).toThrow(
      InvalidOptionsError,
    );
    expect(() => defineScanner({ name: "", scan: async () => benign })).toThrow(
      InvalidOptionsError,
    );
  });
});

describe("isScanContext", () => {
  it("is true only for the context defineScanner handed the backend, while its scan runs", async () => {
    let seen: ScanContext | undefined;
    let during = false;
    const scanner = defineScanner({
      name: "probe",
      scan: async (_artifact, context) => {
        seen = context;
        during = isScanContext(context);
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    await scanner.scan(artifactFromBytes(Buffer.from("x")), { deadline: Date.now() + 5_000 });
    expect(during).toBe(true);
    expect(isScanContext(seen)).toBe(false); // settled: its deadline timer is gone
    expect(isScanContext({ ...seen })).toBe(false); // a copy, or the same shape made elsewhere
    expect(Object.isFrozen(seen)).toBe(true); // its signal cannot be swapped for another
  });
});
