import { describe, expect, it } from "vitest";
import { matchesFilter } from "../../src/protocol/bounty-filter.js";

const bounty = (overrides: Record<string, unknown> = {}) => ({
  mimetype: "application/pdf",
  artifact_type: "file" as const,
  phase: "assertion" as const,
  metadata: { region: "EU", size: 12, signed: true } as Record<string, unknown>,
  ...overrides,
});

describe("bounty filters", () => {
  it("match key=value on the bounty's own fields and on metadata, case-insensitively", () => {
    expect(matchesFilter("mimetype=application/PDF", bounty())).toBe(true);
    expect(matchesFilter("region=eu", bounty())).toBe(true);
    expect(matchesFilter("size=12", bounty())).toBe(true);
    expect(matchesFilter("signed=true", bounty())).toBe(true);
    expect(matchesFilter("artifact_type=url", bounty())).toBe(false);
    expect(matchesFilter("nonsense", bounty())).toBe(false);
    expect(matchesFilter("=x", bounty())).toBe(false);
  });

  it("never let a metadata key stand in for the bounty's own field, even an absent one", () => {
    const url = bounty({ artifact_type: "url", metadata: { artifact_type: "file" } });
    expect(matchesFilter("artifact_type=url", url)).toBe(true);
    expect(matchesFilter("artifact_type=file", url)).toBe(false);
    const noMimetype = bounty({ mimetype: null, metadata: { mimetype: "text/plain" } });
    expect(matchesFilter("mimetype=text/plain", noMimetype)).toBe(false);
  });

  it("compare only strings, numbers, booleans and bigints, and never call the sender's code", () => {
    const hostile = bounty({
      metadata: {
        mimetype: { toString: 1 },
        region: { toString: () => "eu" },
        list: ["eu"],
        nothing: null,
        big: 37287461917542145n,
      },
    });
    for (const filter of ["region=eu", "list=eu", "nothing=null", "toString=x", "__proto__=x"])
      expect(matchesFilter(filter, hostile)).toBe(false);
    expect(matchesFilter("big=37287461917542145", hostile)).toBe(true);
    expect(() => matchesFilter("mimetype=x", hostile)).not.toThrow();
    // Inherited keys are not metadata.
    expect(matchesFilter("constructor=x", bounty({ metadata: {} }))).toBe(false);
  });
});
