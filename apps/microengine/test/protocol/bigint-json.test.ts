import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  parseJsonWithBigInts,
  stringifyWithBigInts,
  withBigIntsAsStrings,
} from "../../src/protocol/bigint-json.js";

describe("JSON with exact integers", () => {
  it("keeps integers beyond 2^53 exact and distinct, safe ones as numbers", () => {
    expect(parseJsonWithBigInts('{"a":37287461917542145,"b":37287461917542146,"c":7}')).toEqual({
      a: 37287461917542145n,
      b: 37287461917542146n,
      c: 7,
    });
    expect(parseJsonWithBigInts("[-9007199254740993, 1.5, 1e400]")).toEqual([
      -9007199254740993n,
      1.5,
      Number.POSITIVE_INFINITY,
    ]);
  });

  it("leaves digits inside strings, escaped quotes and keys alone", () => {
    const text = '{"s":"x\\" 12345678901234567890 \\\\","12345678901234567890":[1]}';
    expect(parseJsonWithBigInts(text)).toEqual(JSON.parse(text));
  });

  it("refuses what JSON.parse refuses, including a big number as a key", () => {
    for (const text of ["{12345678901234567890:1}", "[1,]", "", '{"a":01}', "nope"])
      expect(() => parseJsonWithBigInts(text)).toThrow(SyntaxError);
  });

  it("cannot be fooled into bigints by a string that looks like its marker", () => {
    const text = '{"a":"\\u2063bigint:0000000000000000:5","b":12345678901234567890}';
    expect(parseJsonWithBigInts(text)).toEqual({
      a: "\u2063bigint:0000000000000000:5",
      b: 12345678901234567890n,
    });
  });

  it("writes bigints as JSON integers", () => {
    expect(stringifyWithBigInts({ verdict: "malicious", bid: 1_000_000_000_000_000_001n })).toBe(
      '{"verdict":"malicious","bid":1000000000000000001}',
    );
  });

  it("round-trips any JSON value with bigints (property)", () => {
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small" },
        fc.string(),
        fc.boolean(),
        fc.constant(null),
        fc.integer(),
        // A double that is an integer beyond 2^53 is written as one: it comes back a bigint.
        fc
          .double({ noNaN: true, noDefaultInfinity: true })
          .filter((n) => !Number.isInteger(n) || Number.isSafeInteger(n)),
        fc
          .bigInt({ min: -(10n ** 40n), max: 10n ** 40n })
          .filter((n) => !Number.isSafeInteger(Number(n))),
        fc.array(tie("node"), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie("node"), { maxKeys: 4 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, (input) => {
        const text = stringifyWithBigInts(input);
        expect(parseJsonWithBigInts(text)).toEqual(reviveExpected(input));
      }),
      { seed: 9, numRuns: 300 },
    );
  });
});

/** What a round trip gives: -0 becomes 0, everything else as it was. */
function reviveExpected(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reviveExpected);
  if (value && typeof value === "object")
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, reviveExpected(item)]),
    );
  if (Object.is(value, -0)) return 0;
  return value;
}

describe("withBigIntsAsStrings", () => {
  it("copies a value with its bigints as decimal strings, for readers that use a plain JSON.parse", () => {
    const copy = withBigIntsAsStrings({
      id: 12n,
      rules: { max_allowed_bid: 1_000_000_000_000_000_001n },
      list: [2n ** 70n, 3],
    });
    expect(copy).toEqual({
      id: "12",
      rules: { max_allowed_bid: "1000000000000000001" },
      list: ["1180591620717411303424", 3],
    });
  });
});
