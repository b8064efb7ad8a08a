import { describe, expect, it } from "vitest";
import { computeBid, defaultBidRange } from "../../src/protocol/bid.js";

// Without `coverage` a bid is a real-coverage engine's (an answer that states no coverage bids
// as one with signatures); the last describe holds the test-signature engine's case.
describe("bids (real-coverage engine)", () => {
  const min = 62_500_000_000_000_000n;
  const max = 1_000_000_000_000_000_000n;
  it.each([
    ["malicious", 1, "linear", max],
    ["malicious", 0, "linear", min],
    ["malicious", 0.5, "linear", 531_250_000_000_000_000n],
    ["malicious", 0.5, "conservative", 296_875_000_000_000_000n],
    ["benign", 1, "aggressive", max],
    ["suspicious", 1, "linear", 0n],
    ["unknown", 1, "linear", 0n],
  ] as const)("%s at %d (%s) bids %s", (verdict, confidence, strategy, bid) => {
    expect(computeBid({ verdict, confidence, strategy, min, max })).toBe(bid);
    expect(computeBid({ verdict, confidence, strategy, min, max, coverage: "signatures" })).toBe(
      bid,
    );
  });

  it("keeps favoured and penalised bids inside the rules", () => {
    const bid = (options: Partial<Parameters<typeof computeBid>[0]>) =>
      computeBid({ verdict: "malicious", confidence: 1, strategy: "linear", min, max, ...options });
    expect(bid({ favor: true })).toBe(max);
    expect(bid({ confidence: 0, penalize: true })).toBe(min);
    expect(bid({ confidence: Number.NaN })).toBe(min);
    expect(bid({ confidence: 0.5, min: 5n, max: 5n })).toBe(5n);
  });

  it("never bids above a max given alone, nor below a min given alone", () => {
    for (const strategy of ["linear", "conservative", "aggressive"] as const) {
      for (const confidence of [0, 0.3, 1]) {
        for (const favor of [false, true]) {
          const capped = computeBid({
            verdict: "malicious",
            confidence,
            strategy,
            max: 1000n,
            favor,
          });
          expect(capped).toBeLessThanOrEqual(1000n);
          expect(capped).toBeGreaterThanOrEqual(0n);
        }
      }
    }
    expect(
      computeBid({ verdict: "malicious", confidence: 1, strategy: "linear", max: 1000n }),
    ).toBe(1000n);
    // A max above the default min keeps the default min.
    expect(
      computeBid({ verdict: "malicious", confidence: 0, strategy: "linear", max: 2n * max }),
    ).toBe(defaultBidRange.min);
    // A min alone above the default max is the bid.
    expect(
      computeBid({ verdict: "malicious", confidence: 0.2, strategy: "linear", min: 3n * max }),
    ).toBe(3n * max);
  });
});

describe("bids (test-signature engine: coverage test-signatures)", () => {
  const min = 1_000n;
  const max = 5_000n;
  const testSignatures = "test-signatures" as const;

  it("bids the minimum on benign, whatever the confidence, strategy and filters", () => {
    for (const strategy of ["linear", "conservative", "aggressive"] as const)
      for (const confidence of [0, 0.5, 1])
        for (const favor of [false, true])
          expect(
            computeBid({
              verdict: "benign",
              confidence,
              strategy,
              min,
              max,
              favor,
              coverage: testSignatures,
            }),
          ).toBe(min);
    // Without rules: the marketplace's default minimum, not its maximum.
    expect(
      computeBid({
        verdict: "benign",
        confidence: 1,
        strategy: "linear",
        coverage: testSignatures,
      }),
    ).toBe(defaultBidRange.min);
  });

  it("keeps the bid of a malicious answer (EICAR is certain) and 0 for unknown", () => {
    const bid = (verdict: "malicious" | "unknown") =>
      computeBid({
        verdict,
        confidence: 1,
        strategy: "linear",
        min,
        max,
        coverage: testSignatures,
      });
    expect(bid("malicious")).toBe(max);
    expect(bid("unknown")).toBe(0n);
  });
});
