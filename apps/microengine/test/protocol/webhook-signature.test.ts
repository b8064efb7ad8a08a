import { describe, expect, it } from "vitest";
import { signBody, verifySignature } from "../../src/protocol/webhook-signature.js";

describe("webhook signatures", () => {
  it("accepts the HMAC of the exact body and nothing else", () => {
    const body = Buffer.from('{"a":1}');
    const signature = signBody("secret", body);
    expect(verifySignature("secret", body, signature)).toBe(true);
    expect(verifySignature("secret", body, signature.toUpperCase())).toBe(true);
    expect(verifySignature("other", body, signature)).toBe(false);
    expect(verifySignature("secret", Buffer.from('{"a":2}'), signature)).toBe(false);
    expect(verifySignature("secret", body, "abc")).toBe(false);
  });
});
