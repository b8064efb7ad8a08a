import { describe, expect, it } from "vitest";
import {
  type Artifact,
  BackendUnavailableError,
  createEicarScanner,
  defineScanner,
  eicarBytes,
  type Scanner,
  type ScanResult,
} from "../src/index.js";
import {
  type ConformanceGroup,
  type ConformanceOptions,
  conformanceChecks,
  enabledChecks,
} from "../src/testing/index.js";

/** Runs every check of `group` against the scanner; resolves with the failures' messages. */
async function failuresOf(
  group: ConformanceGroup,
  createScanner: () => Scanner,
  options: ConformanceOptions = {},
): Promise<string[]> {
  const failures: string[] = [];
  for (const check of conformanceChecks.filter((candidate) => candidate.group === group)) {
    try {
      await check.run({
        createScanner,
        options: { stopWithinMs: 300, unreachableWithinMs: 1000, ...options },
      });
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  return failures;
}

const metadata = { malware_family: "" };
const isEicar = (bytes: Uint8Array): boolean => Buffer.from(bytes).includes(eicarBytes());

/** A hand-written scanner (not defineScanner) that reads whole content and ignores its signal. */
function deafScanner(): Scanner {
  const scan = async (artifact: Artifact): Promise<ScanResult> => {
    const bytes = await artifact.bytes();
    return isEicar(bytes)
      ? { verdict: "malicious", confidence: 1, metadata: { malware_family: "EICAR" } }
      : { verdict: "benign", confidence: 1, metadata };
  };
  return { name: "deaf", scan, [Symbol.asyncDispose]: async () => {} };
}

describe("the conformance suite catches broken scanners", () => {
  it("passes the reference EICAR scanner on every enabled group", async () => {
    for (const { check, enabled } of enabledChecks({ largeArtifactBytes: 1024 * 1024 })) {
      if (enabled)
        await check.run({
          createScanner: () => createEicarScanner(),
          options: { largeArtifactBytes: 1024 * 1024 },
        });
    }
  });

  it("fails a scanner that answers benign when its backend is down", async () => {
    const benignOnError = () =>
      defineScanner({
        name: "benign-on-error",
        scan: async () => {
          try {
            throw new Error("connect ECONNREFUSED 127.0.0.1:3310");
          } catch {
            return { verdict: "benign", confidence: 1, metadata };
          }
        },
      });
    const failures = await failuresOf("unreachable", createEicarScanner, {
      createUnreachableScanner: benignOnError,
    });
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(/answered .*"verdict":"benign".* instead of throwing/);
  });

  it("fails a scanner that answers unknown instead of throwing when its backend is down", async () => {
    const unknownOnError = () =>
      defineScanner({
        name: "unknown-on-error",
        scan: async () => ({ verdict: "unknown", confidence: 0, metadata }),
      });
    const failures = await failuresOf("unreachable", createEicarScanner, {
      createUnreachableScanner: unknownOnError,
    });
    expect(failures[0]).toMatch(/instead of throwing/);
  });

  it("fails a scanner that throws untyped errors when its backend is down", async () => {
    const untyped: () => Scanner = () => ({
      name: "untyped",
      scan: async () => {
        throw new Error("ECONNREFUSED");
      },
      [Symbol.asyncDispose]: async () => {},
    });
    const failures = await failuresOf("unreachable", createEicarScanner, {
      createUnreachableScanner: untyped,
    });
    expect(failures[0]).toMatch(/untyped error/);
  });

  it("passes a scanner whose backend down gives a typed error", async () => {
    const typed = () =>
      defineScanner({
        name: "typed",
        scan: async () => {
          throw new BackendUnavailableError({ message: "down" });
        },
      });
    expect(
      await failuresOf("unreachable", createEicarScanner, { createUnreachableScanner: typed }),
    ).toEqual([]);
  });

  it("fails a scanner that ignores its abort signal", async () => {
    const failures = await failuresOf("abort", deafScanner);
    expect(failures.length).toBeGreaterThanOrEqual(1);
    expect(failures.join("\n")).toMatch(/had not ended|resolved/);
  });

  it("fails a scanner that ignores its deadline", async () => {
    const failures = await failuresOf("deadline", deafScanner);
    expect(failures).toHaveLength(2);
  });

  it("fails a scanner whose results do not match the schema", async () => {
    const sloppy: () => Scanner = () => ({
      name: "sloppy",
      scan: async () => ({ verdict: "benign", confidence: 100, metadata }) as ScanResult,
      [Symbol.asyncDispose]: async () => {},
    });
    expect((await failuresOf("schema", sloppy))[0]).toMatch(/does not match scanResultSchema/);
  });

  it("fails a scanner that mixes up concurrent answers", async () => {
    const mixedUp = () => {
      let latest: ScanResult = { verdict: "benign", confidence: 1, metadata };
      return defineScanner({
        name: "mixed-up",
        scan: async (artifact) => {
          const bytes = await artifact.bytes();
          latest = isEicar(bytes)
            ? { verdict: "malicious", confidence: 1, metadata: { malware_family: "EICAR" } }
            : { verdict: "benign", confidence: 1, metadata };
          await new Promise((resolve) => setTimeout(resolve, 10));
          return latest;
        },
      });
    };
    expect((await failuresOf("concurrency", mixedUp))[0]).toMatch(
      /concurrent scan \d+: expected verdict/,
    );
  });

  it("fails a scanner that cannot scan again after close", async () => {
    const singleUse: () => Scanner = () => {
      let closed = false;
      return {
        name: "single-use",
        scan: async () => {
          if (closed) throw new BackendUnavailableError({ message: "closed" });
          return { verdict: "benign", confidence: 1, metadata };
        },
        close: async () => {
          closed = true;
        },
        [Symbol.asyncDispose]: async () => {
          closed = true;
        },
      };
    };
    expect(await failuresOf("lifecycle", singleUse)).toHaveLength(1);
  });

  it("fails a scanner that says malicious for everything", async () => {
    const paranoid = () =>
      defineScanner({
        name: "paranoid",
        scan: async () => ({
          verdict: "malicious",
          confidence: 1,
          metadata: { malware_family: "X" },
        }),
      });
    expect(await failuresOf("clean", paranoid)).toHaveLength(1);
    expect(await failuresOf("empty", paranoid)).toHaveLength(1);
    expect(await failuresOf("large", paranoid, { largeArtifactBytes: 1024 })).toHaveLength(1);
  });

  it("switches groups off per backend", () => {
    const enabled = enabledChecks({ groups: { large: false }, detectsEicar: false })
      .filter((entry) => entry.enabled)
      .map((entry) => entry.check.group);
    expect(enabled).not.toContain("large");
    expect(enabled).not.toContain("eicar");
    expect(enabled).not.toContain("unreachable");
    expect(enabled).toContain("abort");
  });
});
