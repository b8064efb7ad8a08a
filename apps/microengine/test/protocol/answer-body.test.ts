import { describe, expect, it } from "vitest";
import { answerBodyProblem } from "../../src/protocol/answer-body.js";
import { answerTarget } from "../harness/answer-target.js";

const target = answerTarget();

describe("an answer recorded in Redis is held to the bounty's rules before it is posted (second audit, item 5)", () => {
  it("takes what the engine itself could have posted", () => {
    expect(answerBodyProblem('{"verdict":"malicious","bid":5000,"metadata":{}}', target)).toBe(
      undefined,
    );
    expect(answerBodyProblem('{"verdict":"unknown","bid":0,"metadata":{}}', target)).toBe(
      undefined,
    );
    const vote = { ...target, phase: "arbitration" as const };
    expect(answerBodyProblem('{"verdict":"benign","metadata":{}}', vote)).toBe(undefined);
  });

  it.each([
    ['{"verdict":"benign","bid":100000000000000000000000000,"metadata":{}}', /outside the rules/],
    ['{"verdict":"malicious","bid":999,"metadata":{}}', /outside the rules/],
    ['{"verdict":"malicious","bid":1.5,"metadata":{}}', /no integer bid/],
    ['{"verdict":"malicious","bid":"2000","metadata":{}}', /no integer bid/],
    ['{"verdict":"unknown","bid":3000,"metadata":{}}', /a bid of 3000 on unknown/],
    ['{"verdict":"clean","bid":3000,"metadata":{}}', /no valid verdict/],
    ['{"verdict":"malicious","bid":3000}', /no metadata/],
    ["[]", /not an object/],
    ["not json", /not JSON/],
  ])("refuses %s", (body, problem) => {
    expect(answerBodyProblem(body, target)).toMatch(problem);
  });

  it("refuses a bid on a vote, and a bid past the marketplace default without rules", () => {
    const vote = { ...target, phase: "arbitration" as const };
    expect(answerBodyProblem('{"verdict":"benign","bid":1,"metadata":{}}', vote)).toMatch(/vote/);
    const noRules = { ...target, rules: undefined };
    expect(
      answerBodyProblem('{"verdict":"malicious","bid":2000000000000000000,"metadata":{}}', noRules),
    ).toMatch(/outside the rules/);
  });
});
