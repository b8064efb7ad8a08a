import { describe, expect, it } from "vitest";
import { any, type BackendOutcome, majority, quorum, weighted } from "../src/index.js";
import { result } from "./fake-scanners.js";

type Answer = "M" | "B" | "S" | "U";
const verdictOf = { M: "malicious", B: "benign", S: "suspicious", U: "unknown" } as const;
function outcomes(
  answers: ReadonlyArray<Answer | readonly [string, Answer, number?]>,
): BackendOutcome[] {
  return answers.map((answer, index) => {
    const [name, code, confidence] = typeof answer === "string" ? [`b${index}`, answer, 1] : answer;
    return {
      name,
      status: "answered",
      result: result(verdictOf[code], confidence ?? 1),
      durationMs: 1,
    };
  });
}

describe("any", () => {
  it.each([
    [["M", "B"], "malicious", 1],
    [["S", "B"], "suspicious", 1],
    [["B", "B"], "benign", 1],
    [["B", "U"], "benign", 1],
    [["U", "U"], "unknown", 0],
    [
      [
        ["a", "M", 0.4],
        ["b", "M", 0.9],
      ],
      "malicious",
      0.9,
    ],
    [
      [
        ["a", "B", 0.4],
        ["b", "B", 0.9],
      ],
      "benign",
      0.4,
    ],
  ] as const)("%j -> %s (%d)", (answers, verdict, confidence) => {
    expect(any(outcomes(answers))).toEqual({ verdict, confidence });
  });
});

describe("majority", () => {
  it.each([
    [["M", "M", "B"], "malicious", 2 / 3],
    [["M", "S", "B"], "suspicious", 2 / 3],
    [["M", "B"], "unknown", 0],
    [["B", "B", "M"], "benign", 2 / 3],
    [["M", "U", "U"], "malicious", 1],
    [["U"], "unknown", 0],
  ] as const)("%j -> %s", (answers, verdict, confidence) => {
    const decided = majority(outcomes(answers));
    expect(decided.verdict).toBe(verdict);
    expect(decided.confidence).toBeCloseTo(confidence);
  });
});

describe("quorum", () => {
  it.each([
    [2, ["M", "M", "B"], "malicious", 2 / 3],
    [2, ["M", "S", "B"], "suspicious", 2 / 3],
    [2, ["M", "B", "B"], "benign", 2 / 3],
    [1, ["M", "B", "B"], "malicious", 1 / 3],
    [3, ["M", "M", "U"], "benign", 0],
    [2, ["U", "U"], "unknown", 0],
  ] as const)("quorum(%d) of %j -> %s", (minimum, answers, verdict, confidence) => {
    const decided = quorum(minimum)(outcomes(answers));
    expect(decided.verdict).toBe(verdict);
    expect(decided.confidence).toBeCloseTo(confidence);
  });

  it("refuses a quorum below 1", () => {
    expect(() => quorum(0)).toThrow(RangeError);
  });
});

describe("weighted", () => {
  it("weighs a backend named like an Object method (constructor, toString) as 1, not as a function", () => {
    const named = weighted({ eicar: 1 }, 1);
    for (const name of ["constructor", "toString", "valueOf", "hasOwnProperty"])
      expect(
        named(
          outcomes([
            ["eicar", "B"],
            [name, "M"],
          ]),
        ).verdict,
        name,
      ).toBe("malicious");
  });

  const policy = weighted({ clamav: 2, yara: 1 }, 2);
  it.each([
    [
      [
        ["clamav", "M"],
        ["yara", "B"],
      ],
      "malicious",
    ],
    [
      [
        ["clamav", "B"],
        ["yara", "M"],
      ],
      "suspicious",
    ],
    [
      [
        ["clamav", "S"],
        ["yara", "M"],
      ],
      "malicious",
    ],
    [
      [
        ["clamav", "B"],
        ["yara", "B"],
      ],
      "benign",
    ],
    [
      [
        ["clamav", "U"],
        ["yara", "U"],
      ],
      "unknown",
    ],
    [
      [
        ["clamav", "M", 0.5],
        ["yara", "B"],
      ],
      "suspicious",
    ],
    [
      [
        ["other", "M"],
        ["yara", "M"],
      ],
      "malicious",
    ],
  ] as const)("%j -> %s", (answers, verdict) => {
    expect(policy(outcomes(answers)).verdict).toBe(verdict);
  });

  it("refuses a non-positive threshold and negative weights", () => {
    expect(() => weighted({}, 0)).toThrow(RangeError);
    expect(() => weighted({ a: -1 }, 1)).toThrow(RangeError);
  });
});
