import type { Scanner } from "@engine/core";
import { describe, expect, it } from "vitest";
import { conformanceOptions } from "../../../src/backends/third-party/module-conformance.js";

describe("a module's conformance declaration", () => {
  const unused = async (): Promise<Scanner> => {
    throw new Error("not called");
  };

  it("leaves the 32 MiB stream off unless the module turns it on", () => {
    expect(conformanceOptions(undefined, unused).groups).toEqual({ large: false });
    expect(
      conformanceOptions({ groups: { large: true }, detectsEicar: false }, unused),
    ).toMatchObject({ groups: { large: true }, detectsEicar: false });
  });

  it("calls createUnreachableScanner (under capabilities, or at the top as before) through the bounded factory call", async () => {
    const made: string[] = [];
    const create = async (_factory: unknown, factoryName: string) => {
      made.push(factoryName);
      return {} as Scanner;
    };
    const factory = () => ({});
    for (const declaration of [
      { capabilities: { createUnreachableScanner: factory, maxArtifactBytes: 1024 } },
      { createUnreachableScanner: factory },
    ]) {
      const options = conformanceOptions(declaration, create);
      expect(options).not.toHaveProperty("createUnreachableScanner");
      await options.capabilities?.createUnreachableScanner?.();
    }
    expect(made).toEqual([
      "conformance.createUnreachableScanner",
      "conformance.createUnreachableScanner",
    ]);
    expect(
      conformanceOptions({ capabilities: { maxArtifactBytes: 1024 } }, create).capabilities,
    ).toEqual({ maxArtifactBytes: 1024 });
  });
});
