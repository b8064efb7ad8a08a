import { describe, expect, it } from "vitest";
import { type RawMatch, verdictFromMatches } from "../src/index.js";

const options = {
  maliciousScore: 70,
  suspiciousTags: ["suspicious", "hunting", "heuristic"],
  maliciousConfidence: 1,
  suspiciousConfidence: 0.5,
};

function match(
  identifier: string,
  metadata: RawMatch["metadata"] = {},
  tags: string[] = [],
): RawMatch {
  return { namespace: "ns", identifier, tags, metadata };
}

describe("rule-meta conventions", () => {
  it.each([
    ["no meta", match("Rule_A"), "malicious", 1, "Rule_A"],
    [
      "malware_family",
      match("R", { malware_family: "Emotet", family: "X" }),
      "malicious",
      1,
      "Emotet",
    ],
    ["family", match("R", { family: "Qakbot" }), "malicious", 1, "Qakbot"],
    ["threat_name", match("R", { threat_name: "Trojan.Gen" }), "malicious", 1, "Trojan.Gen"],
    ["verdict suspicious", match("R", { verdict: "suspicious" }), "suspicious", 0.5, "R"],
    ["verdict beats score", match("R", { verdict: "malicious", score: 10 }), "malicious", 0.1, "R"],
    ["score high", match("R", { score: 80 }), "malicious", 0.8, "R"],
    ["score low", match("R", { score: 60 }), "suspicious", 0.6, "R"],
    ["score as text", match("R", { score: "75" }), "malicious", 0.75, "R"],
    ["confidence 0..1", match("R", { confidence: 0.9 }), "malicious", 0.9, "R"],
    [
      "confidence 0..100",
      match("R", { confidence: 40, verdict: "suspicious" }),
      "suspicious",
      0.4,
      "R",
    ],
    ["suspicious tag", match("R", {}, ["Hunting"]), "suspicious", 0.5, "R"],
    ["empty family falls back", match("R", { malware_family: "" }), "malicious", 1, "R"],
  ])("%s", (_, raw, verdict, confidence, family) => {
    expect(verdictFromMatches([raw], options)).toMatchObject({ verdict, confidence, family });
  });

  it("is benign without matches", () => {
    expect(verdictFromMatches([], options)).toMatchObject({
      verdict: "benign",
      confidence: 1,
      family: "",
    });
  });

  it("prefers malicious matches, then the most confident (first on ties)", () => {
    const outcome = verdictFromMatches(
      [
        match("Hunt", { score: 65 }),
        match("Low", { score: 75, family: "LowFamily" }),
        match("High", { score: 90, family: "HighFamily" }),
        match("AlsoHigh", { score: 90, family: "Second" }),
      ],
      options,
    );
    expect(outcome).toMatchObject({ verdict: "malicious", confidence: 0.9, family: "HighFamily" });
    expect(outcome.summaries).toHaveLength(4);
  });

  it("keeps only the selected meta keys", () => {
    const [summary] = verdictFromMatches(
      [match("R", { description: "d", author: "a", internal_id: 7 })],
      options,
    ).summaries;
    expect(summary?.meta).toEqual({ description: "d", author: "a" });
  });
});
