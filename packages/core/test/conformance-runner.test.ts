import { describe, expect, it } from "vitest";
import { createEicarScanner } from "../src/index.js";
import {
  type ConformanceRunner,
  conformanceChecks,
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
      detectsEicar: false,
      groups: { large: false },
    });
    expect(registered[0]).toBe("describe conformance: word");
    expect(registered).toHaveLength(conformanceChecks.length + 1);
    const skipped = registered
      .filter((entry) => entry.startsWith("skip"))
      .map((entry) => entry.split("]")[0]);
    expect(skipped).toEqual(["skip [eicar", "skip [unreachable", "skip [large"]);
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
