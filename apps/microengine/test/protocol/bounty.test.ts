import { describe, expect, it } from "vitest";
import { parseJsonWithBigInts, stringifyWithBigInts } from "../../src/protocol/bigint-json.js";
import { BountyBodyError, parseBountyBody, reviveBounty } from "../../src/protocol/bounty.js";

const receivedAt = Date.parse("2026-11-21T12:00:00Z");
const valid = {
  id: 2099741177,
  artifact_type: "FILE",
  artifact_uri: "https://example.com/a",
  expiration: "2026-11-21T12:00:30Z",
  response_url: "https://marketplace.example/answer",
  phase: "assertion",
  rules: { min_allowed_bid: 62500000000000000, max_allowed_bid: 1000000000000000000 },
  something_new: { ignored: true },
};
const parse = (body: string) => parseBountyBody(body, receivedAt);

describe("bounty parsing", () => {
  it("is tolerant like the SDK: extra fields, any case, missing expiration", () => {
    const bounty = parse(JSON.stringify(valid));
    expect(bounty).toMatchObject({ id: "2099741177", artifact_type: "file", phase: "assertion" });
    expect(bounty.expiresAt).toBe(Date.parse("2026-11-21T12:00:30Z"));
    const { expiration: _, ...withoutExpiration } = valid;
    expect(parseBountyBody(JSON.stringify(withoutExpiration), 1000).expiresAt).toBe(31_000);
  });

  it("reads the SDK's phase names in any case, and a missing or null phase as an assertion", () => {
    const phaseOf = (phase: unknown) => parse(JSON.stringify({ ...valid, phase })).phase;
    expect(phaseOf("assertion_window")).toBe("assertion");
    expect(phaseOf("Assertion_Window")).toBe("assertion");
    expect(phaseOf("arbitration_window")).toBe("arbitration");
    expect(phaseOf("ARBITRATION")).toBe("arbitration");
    expect(phaseOf(null)).toBe("assertion");
    expect(phaseOf(undefined)).toBe("assertion");
    for (const phase of ["reveal", "window", "toString", "__proto__", "assertion_", ""]) {
      expect(() => phaseOf(phase), phase).toThrow(
        "phase: not a phase; accepted (any case): assertion, assertion_window, arbitration, arbitration_window",
      );
    }
    expect(() => phaseOf(1)).toThrow(/^phase: a string; accepted/);
  });

  it("takes a UUID id (the SDK's integration fixtures) in lower case, and nothing else but digits", () => {
    const idOf = (id: string) => parse(JSON.stringify({ ...valid, id })).id;
    expect(idOf("A7F8818A-95FC-4487-AD9A-522F6CD88CB2")).toBe(
      "a7f8818a-95fc-4487-ad9a-522f6cd88cb2",
    );
    for (const id of [
      "a7f8818a-95fc-4487-ad9a-522f6cd88cb2:x",
      "a7f8818a95fc4487ad9a522f6cd88cb2",
      "1-2",
    ])
      expect(() => idOf(id), id).toThrow(/^id: /);
  });

  it("reads bids exactly, as integers", () => {
    const text = JSON.stringify(valid).replace("1000000000000000000", "1000000000000000001");
    expect(parse(text).rules?.max_allowed_bid).toBe(1_000_000_000_000_000_001n);
    expect(() => parse(JSON.stringify(valid).replace("62500000000000000", "6.25e16"))).toThrow(
      /rules.min_allowed_bid/,
    );
  });

  it("keeps ids beyond 2^53 exactly as given, as strings or as bare JSON integers", () => {
    const asString = (id: string) => parse(JSON.stringify({ ...valid, id })).id;
    const asInteger = (id: string) =>
      parse(JSON.stringify({ ...valid, id: 0 }).replace('"id":0', `"id":${id}`)).id;
    expect(asString("37287461917542145")).toBe("37287461917542145");
    expect(asString("37287461917542146")).toBe("37287461917542146");
    expect(asInteger("37287461917542145")).toBe("37287461917542145");
    expect(asInteger("37287461917542146")).toBe("37287461917542146");
    const uint256 =
      "115792089237316195423570985008687907853269984665640564039457584007913129639935";
    expect(asInteger(uint256)).toBe(uint256);
    expect(asString("007")).toBe("007");
  });

  it.each([
    ["not json", /not JSON/],
    [JSON.stringify({ ...valid, artifact_type: "email" }), /artifact_type/],
    [JSON.stringify({ ...valid, response_url: "ftp://x" }), /response_url/],
    [JSON.stringify({ ...valid, id: "abc" }), /id/],
    [JSON.stringify({ ...valid, id: -5 }), /id/],
    [JSON.stringify({ ...valid, id: "1".repeat(79) }), /id/],
    [JSON.stringify({ ...valid, expiration: "tomorrow" }), /expiration/],
    [
      JSON.stringify({ ...valid, expiration: "2026-12-21T12:00:00Z" }),
      /^expiration: more than 24 hours/,
    ],
    [
      JSON.stringify({ ...valid, expiration: "2027-01-20T12:00:00Z" }),
      /^expiration: more than 24 hours/,
    ],
    [
      JSON.stringify({ ...valid, expiration: "2026-11-21T11:59:00Z" }),
      /^expiration: already passed/,
    ],
    [JSON.stringify({ ...valid, expiration: undefined, duration: 90_000 }), /^duration/],
    [
      JSON.stringify({ ...valid, rules: { min_allowed_bid: 10, max_allowed_bid: 1 } }),
      /^rules: min_allowed_bid is above/,
    ],
    [JSON.stringify({ ...valid, rules: { max_allowed_bid: -1 } }), /rules.max_allowed_bid/],
  ])("refuses %s naming the field", (body, message) => {
    expect(() => parse(body)).toThrow(BountyBodyError);
    expect(() => parse(body)).toThrow(message);
  });

  it("revives a queued bounty exactly (bids stay bigints, expiration kept)", () => {
    const bounty = parse(
      JSON.stringify(valid).replace("1000000000000000000", "1000000000000000001"),
    );
    const revived = reviveBounty(parseJsonWithBigInts(stringifyWithBigInts(bounty)));
    expect(revived).toEqual(bounty);
    expect(revived.rules?.max_allowed_bid).toBe(1_000_000_000_000_000_001n);
    expect(() => reviveBounty({ ...bounty, expiresAt: "soon" })).toThrow(/expiresAt/);
    expect(() => reviveBounty(null)).toThrow(BountyBodyError);
  });

  it("second audit, item 15: refuses metadata nested past 32 levels before parsing it, and counts strings right", () => {
    const deep = (levels: number) =>
      JSON.stringify({ ...valid, metadata: { a: 0 } }).replace(
        '{"a":0}',
        `${'{"a":'.repeat(levels)}0${"}".repeat(levels)}`,
      );
    expect(() => parse(deep(3_000))).toThrow(/nested more than 32 levels/);
    expect(() => parse(deep(100_000))).toThrow(BountyBodyError);
    expect(parse(deep(20)).metadata).toBeDefined();
    // Brackets inside strings (escaped quotes too) are not nesting.
    const bracketed = { ...valid, metadata: { note: `\\" ${"[".repeat(100)}` } };
    expect(parse(JSON.stringify(bracketed)).metadata).toEqual(bracketed.metadata);
  });
});
