import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  artifactFromBytes,
  fromLegacyScanner,
  fromLegacyTuple,
  InvalidOptionsError,
  type ScanResult,
  toLegacyTuple,
  verdicts,
} from "../src/index.js";

describe("toLegacyTuple", () => {
  it.each([
    ["malicious", true, true],
    ["benign", true, false],
    ["suspicious", false, false],
    ["unknown", false, false],
  ] as const)("maps %s to bit=%s verdict=%s", (verdict, bit, malicious) => {
    const tuple = toLegacyTuple({ verdict, confidence: 1, metadata: { malware_family: "F" } });
    expect(tuple).toEqual({ bit, verdict: malicious, metadata: '{"malware_family":"F"}' });
  });
});

describe("fromLegacyTuple", () => {
  it("reads the tutorial's ClamAV answers", () => {
    expect(fromLegacyTuple([true, true, ""])).toEqual({
      verdict: "malicious",
      confidence: 1,
      metadata: { malware_family: "" },
    });
    expect(fromLegacyTuple({ bit: true, verdict: false, metadata: "" }).verdict).toBe("benign");
    expect(fromLegacyTuple([false, true, "no opinion"])).toEqual({
      verdict: "unknown",
      confidence: 0,
      metadata: { malware_family: "", comments: ["no opinion"] },
    });
  });

  it("keeps non-JSON text, and text that only looks like JSON, as a comment", () => {
    expect(fromLegacyTuple([true, true, "Eicar-Test-Signature"]).metadata.comments).toEqual([
      "Eicar-Test-Signature",
    ]);
    expect(fromLegacyTuple([true, true, "{broken"]).metadata.comments).toEqual(["{broken"]);
  });

  it("rejects malformed tuples with a typed error", () => {
    expect(() => fromLegacyTuple(["yes", true, ""] as never)).toThrow(InvalidOptionsError);
    expect(() => fromLegacyTuple({ bit: true } as never)).toThrow(InvalidOptionsError);
  });

  it("inverts toLegacyTuple for every asserting verdict (property)", () => {
    const result = fc.record({
      verdict: fc.constantFrom<ScanResult["verdict"]>(...verdicts),
      confidence: fc.double({ min: 0, max: 1, noNaN: true }),
      family: fc.string(),
      comments: fc.array(fc.string(), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(result, ({ verdict, confidence, family, comments }) => {
        const original: ScanResult = {
          verdict,
          confidence,
          metadata: { malware_family: family, comments },
        };
        const back = fromLegacyTuple(toLegacyTuple(original), confidence);
        if (verdict === "malicious" || verdict === "benign") expect(back).toEqual(original);
        else expect(back.verdict).toBe("unknown");
        expect(back.metadata).toEqual(original.metadata);
      }),
    );
  });
});

describe("fromLegacyScanner", () => {
  it("adapts a tutorial-style scanner", async () => {
    const scanner = fromLegacyScanner("tutorial", async (_guid, content) => [
      true,
      Buffer.from(content).includes("bad"),
      "",
    ]);
    expect((await scanner.scan(artifactFromBytes("a bad thing"))).verdict).toBe("malicious");
    expect((await scanner.scan(artifactFromBytes("fine"))).verdict).toBe("benign");
  });
});
