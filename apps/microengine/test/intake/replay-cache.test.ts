import { describe, expect, it } from "vitest";
import { ReplayCache } from "../../src/intake/replay-cache.js";

describe("the replay cache", () => {
  it("refuses a key seen before, and forgets the oldest keys past its bound", () => {
    const cache = new ReplayCache(4);
    const until = Date.now() + 60_000;
    expect(cache.remember(["a:assertion", "delivery:1"], until)).toBe(true);
    expect(cache.remember(["a:assertion", undefined], until)).toBe(false);
    expect(cache.remember(["b:assertion", "delivery:1"], until)).toBe(false);
    expect(cache.remember(["c:assertion"], until)).toBe(true);
    expect(cache.remember(["d:assertion"], until)).toBe(true);
    expect(cache.remember(["e:assertion"], until)).toBe(true); // 5 keys: a:assertion goes
    expect(cache.remember(["a:assertion"], until)).toBe(true);
    expect(cache.remember(["e:assertion"], until)).toBe(false);
  });
});
