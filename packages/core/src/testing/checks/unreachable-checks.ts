import { EngineError } from "../../errors/engine-error.js";
import {
  type ConformanceCheck,
  capabilitiesOf,
  describeResult,
  fail,
  settleWithin,
  withScanner,
} from "../conformance-support.js";
import { cleanArtifact, eicarArtifact } from "../test-artifacts.js";

/** The `unreachable` group: with the backend down, scans throw a typed `EngineError`, never a verdict. */
export const unreachableChecks: readonly ConformanceCheck[] = [
  {
    group: "unreachable",
    name: "throws a typed engine error, never a verdict, when the backend is unreachable",
    run: async (subject) => {
      const { createUnreachableScanner } = capabilitiesOf(subject.options);
      if (!createUnreachableScanner)
        fail("the unreachable group needs capabilities.createUnreachableScanner");
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
];
