import type { Scanner } from "@engine/core";
import { type ConformanceOptions, enabledChecks } from "@engine/core/conformance";
import { z } from "zod";
import { errorMessage } from "../../operations/error-message.js";
import type { BackendModule } from "./module-loader.js";
import { within } from "./time-bound.js";

/** The conformance options a module may export (`export const conformance = {...}`). */
export const conformanceDeclarationSchema = z
  .looseObject({
    capabilities: z
      .looseObject({
        detectsEicar: z.boolean().optional(),
        detectsEicarInLargeArtifacts: z.boolean().optional(),
        maxArtifactBytes: z.number().int().positive().optional(),
        createUnreachableScanner: z.function().optional(),
      })
      .optional(),
    detectsEicar: z.boolean().optional(),
    createUnreachableScanner: z.function().optional(),
    groups: z.record(z.string(), z.boolean()).optional(),
    stopWithinMs: z.number().positive().max(600_000).optional(),
    unreachableWithinMs: z.number().positive().max(600_000).optional(),
    largeArtifactBytes: z
      .number()
      .int()
      .positive()
      .max(1024 ** 3)
      .optional(),
    detectsEicarInLargeArtifacts: z.boolean().optional(),
    concurrentScans: z.number().int().positive().max(256).optional(),
    checkTimeoutMs: z.number().positive().max(600_000).optional(),
  })
  .optional();

/** What a module declares in its `conformance` export, checked. */
export type ConformanceDeclaration = z.output<typeof conformanceDeclarationSchema>;

/**
 * The conformance options of a module: what it declares, merged over the defaults (`large`
 * off). Its `createUnreachableScanner` (under `capabilities`, or at the top as before) is
 * called through `createScanner`, which bounds it and wraps what it returns in the contract.
 */
export function conformanceOptions(
  declaration: ConformanceDeclaration,
  createScanner: (factory: unknown, factoryName: string) => Promise<Scanner>,
): ConformanceOptions {
  const {
    createUnreachableScanner: legacyUnreachable,
    capabilities: declaredCapabilities,
    ...declared
  } = declaration ?? {};
  const { createUnreachableScanner: declaredUnreachable, ...capabilities } =
    declaredCapabilities ?? {};
  const createUnreachableScanner = declaredUnreachable ?? legacyUnreachable;
  return {
    // A third-party backend may be slow or remote: the 32 MiB stream is opt-in.
    ...declared,
    groups: { large: false, ...declared.groups },
    capabilities: {
      ...capabilities,
      ...(createUnreachableScanner
        ? {
            createUnreachableScanner: () =>
              createScanner(createUnreachableScanner, "conformance.createUnreachableScanner"),
          }
        : {}),
    },
  };
}

/**
 * Runs the conformance checks that apply to a third-party backend (those its module's
 * `conformance` export's `capabilities` and `groups` leave on; `unreachable` only with its
 * `createUnreachableScanner`, `large` only when its `groups` turn it on),
 * each on a fresh scanner from its factory, each bounded by `checkTimeoutMs` (default 60 s).
 * Prints one PASS/FAIL/SKIP line per check; resolves true when none failed.
 */
export async function checkConformance(
  module: Pick<BackendModule, "name" | "conformance" | "createScanner">,
  out: NodeJS.WritableStream,
): Promise<boolean> {
  const options = module.conformance;
  const limitMs = options.checkTimeoutMs ?? 60_000;
  let passed = true;
  for (const { check, enabled, skipReason } of enabledChecks(options)) {
    const label = `${module.name} conformance ${check.group}: ${check.name}`;
    if (!enabled) {
      out.write(`SKIP ${label} (${skipReason})\n`);
      continue;
    }
    try {
      await within(
        check.run({ createScanner: () => module.createScanner(), options }),
        limitMs,
        `did not finish within ${limitMs} ms`,
      );
      out.write(`PASS ${label}\n`);
    } catch (error) {
      passed = false;
      // One line per check: zod's messages put the path on a line of its own.
      const message = errorMessage(error).replace(/\s*\n\s*/g, " ");
      out.write(`FAIL ${label}: ${message}\n`);
    }
  }
  return passed;
}
