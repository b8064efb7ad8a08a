import { describe, expect, it } from "vitest";
import { createEicarScanner, defineScanner } from "../src/index.js";
import {
  type ConformanceRunner,
  conformanceChecks,
  enabledChecks,
  registerConformance,
} from "../src/testing/conformance.js";

describe("registerConformance", () => {
  it("registers one test per check with the runner given, skipping what the scanner does not declare", () => {
    const registered: string[] = [];
    const it = Object.assign(
      (name: string) => {
        registered.push(`run ${name}`);
      },
      {
        skip: (name: string) => {
          registered.push(`skip ${name}`);
        },
      },
    );
    const runner: ConformanceRunner = {
      describe: (name, body) => {
        registered.push(`describe ${name}`);
        body();
      },
      it,
    };
    registerConformance(runner, "word", () => createEicarScanner(), {
      capabilities: { detectsEicar: false, maxArtifactBytes: 64 * 1024 },
      groups: { lifecycle: false },
    });
    expect(registered[0]).toBe("describe conformance: word");
    expect(registered).toHaveLength(conformanceChecks.length + 1);
    const skipped = registered.filter((entry) => entry.startsWith("skip"));
    const groups = [...new Set(skipped.map((entry) => /\[(\w+)\]/.exec(entry)?.[1]))];
    expect(groups).toEqual(["eicar", "lifecycle", "unreachable", "large"]);
    // Each skipped title says which declaration (or switch) left it out.
    expect(skipped.find((entry) => entry.includes("[eicar]"))).toContain(
      "(skipped: the scanner does not declare detectsEicar)",
    );
    expect(skipped.find((entry) => entry.includes("[unreachable]"))).toContain(
      "(skipped: the scanner declares no createUnreachableScanner)",
    );
    expect(skipped.find((entry) => entry.includes("[large]"))).toContain("maxArtifactBytes");
    expect(skipped.find((entry) => entry.includes("[lifecycle]"))).toContain(
      "group lifecycle switched off",
    );
  });

  it("keeps the deprecated top-level options working, and scans the large artifact within maxArtifactBytes", async () => {
    const enabled = (options: Parameters<typeof enabledChecks>[0]) =>
      enabledChecks(options)
        .filter((entry) => entry.enabled)
        .map((entry) => entry.check.group);
    expect(enabled({ detectsEicar: false })).not.toContain("eicar");
    expect(enabled({ createUnreachableScanner: () => createEicarScanner() })).toContain(
      "unreachable",
    );
    expect(enabled({ capabilities: { maxArtifactBytes: 2 * 1024 * 1024 } })).toContain("large");
    expect(() => enabled({ capabilities: { maxArtifactBytes: Number.NaN } })).toThrow(
      /maxArtifactBytes must be a positive number/,
    );
    // A 2 MiB limit: the large check scans 2 MiB, not the 32 MiB default (which would be refused).
    let largest = 0;
    const sized = defineScanner({
      name: "sized",
      scan: async (artifact) => {
        const bytes = await artifact.bytes({ maxBytes: 2 * 1024 * 1024 });
        largest = Math.max(largest, bytes.byteLength);
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const large = enabledChecks({}).find((entry) => entry.check.group === "large");
    await large?.check.run({
      createScanner: () => sized,
      options: { capabilities: { maxArtifactBytes: 2 * 1024 * 1024, detectsEicar: false } },
    });
    expect(largest).toBe(2 * 1024 * 1024);
  });

  it("runs with a real runner's tests: the checks pass for a conformant scanner", async () => {
    const tests: Array<() => Promise<void>> = [];
    registerConformance(
      {
        describe: (_name, body) => body(),
        it: Object.assign((_name: string, test: () => Promise<void>) => void tests.push(test), {
          skip: () => {},
        }),
      },
      "eicar",
      () => createEicarScanner(),
      { groups: { large: false, lifecycle: false, concurrency: false } },
    );
    expect(tests.length).toBeGreaterThan(5);
    for (const test of tests) await test();
  });
});
