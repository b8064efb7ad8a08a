import { describe, expect, it } from "vitest";
import { isAllowedHost, isPrivateAddress } from "../src/address-policy.js";
import { computeBid, matchesFilter, stringifyWithBigInt } from "../src/bid.js";
import { BountyBodyError, parseBountyBody } from "../src/bounty.js";
import { ConfigError, loadConfig } from "../src/config.js";
import { policyFromConfig } from "../src/engine-backends.js";
import { signBody, verifySignature } from "../src/webhook-signature.js";

describe("configuration", () => {
  it("has the documented defaults", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      PORT: 8080,
      HOST: "127.0.0.1",
      YARA_ENGINE: "wasm",
      VERDICT_POLICY: "any",
      BID_STRATEGY: "linear",
      ARTIFACT_ALLOWED_HOSTS: [],
    });
    expect(config.ENGINE_BACKENDS).toBeUndefined();
  });

  it("names the variable in every error", () => {
    expect(() => loadConfig({ PORT: "eighty" })).toThrow(/PORT: /);
    expect(() => loadConfig({ ENGINE_BACKENDS: "clamav,avast" })).toThrow(/ENGINE_BACKENDS/);
    expect(() => loadConfig({ VERDICT_POLICY: "most" })).toThrow(
      /VERDICT_POLICY: use any, majority/,
    );
    expect(() => loadConfig({ CLAMD_SOCKET: "/a", CLAMD_HOST: "b" })).toThrow(ConfigError);
  });

  it("lets flags override variables and parses lists", () => {
    const config = loadConfig(
      { PORT: "1", ENGINE_BACKENDS: "eicar" },
      { PORT: "9090", ARTIFACT_ALLOWED_HOSTS: "a.example, *.b.example" },
    );
    expect(config.PORT).toBe(9090);
    expect(config.ENGINE_BACKENDS).toEqual(["eicar"]);
    expect(config.ARTIFACT_ALLOWED_HOSTS).toEqual(["a.example", "*.b.example"]);
  });

  it("turns VERDICT_POLICY into a policy", () => {
    const outcome = (name: string, verdict: "malicious" | "benign") => ({
      name,
      status: "answered" as const,
      durationMs: 1,
      result: { verdict, confidence: 1, metadata: { malware_family: "" } },
    });
    expect(
      policyFromConfig("quorum:2")([outcome("a", "malicious"), outcome("b", "benign")]).verdict,
    ).toBe("benign");
    expect(
      policyFromConfig("weighted:a=2,b=1:2")([outcome("a", "malicious"), outcome("b", "benign")])
        .verdict,
    ).toBe("malicious");
    expect(
      policyFromConfig("majority")([outcome("a", "malicious"), outcome("b", "benign")]).verdict,
    ).toBe("unknown");
  });
});

describe("bids", () => {
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
  });

  it("keeps favoured and penalised bids inside the rules", () => {
    expect(
      computeBid({
        verdict: "malicious",
        confidence: 1,
        strategy: "linear",
        min,
        max,
        favor: true,
      }),
    ).toBe(max);
    expect(
      computeBid({
        verdict: "malicious",
        confidence: 0,
        strategy: "linear",
        min,
        max,
        penalize: true,
      }),
    ).toBe(min);
    expect(
      computeBid({ verdict: "malicious", confidence: Number.NaN, strategy: "linear", min, max }),
    ).toBe(min);
    expect(
      computeBid({ verdict: "malicious", confidence: 0.5, strategy: "linear", min: 5n, max: 5n }),
    ).toBe(5n);
  });

  it("writes bids as JSON integers, beyond JavaScript's safe integers", () => {
    expect(stringifyWithBigInt({ verdict: "malicious", bid: 1_000_000_000_000_000_001n })).toBe(
      '{"verdict":"malicious","bid":1000000000000000001}',
    );
  });

  it("matches key=value filters on top-level fields and metadata", () => {
    const bounty = {
      mimetype: "application/pdf",
      artifact_type: "file",
      metadata: { region: "EU" },
    };
    expect(matchesFilter("mimetype=application/pdf", bounty)).toBe(true);
    expect(matchesFilter("region=eu", bounty)).toBe(true);
    expect(matchesFilter("artifact_type=url", bounty)).toBe(false);
    expect(matchesFilter("nonsense", bounty)).toBe(false);
  });
});

describe("bounty parsing", () => {
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

  it("is tolerant like the SDK: extra fields, any case, missing expiration", () => {
    const bounty = parseBountyBody(JSON.stringify(valid));
    expect(bounty).toMatchObject({ id: "2099741177", artifact_type: "file", phase: "assertion" });
    expect(bounty.expiresAt).toBe(Date.parse("2026-11-21T12:00:30Z"));
    const { expiration: _, ...withoutExpiration } = valid;
    expect(parseBountyBody(JSON.stringify(withoutExpiration), 1000).expiresAt).toBe(31_000);
  });

  it("reads bids exactly, as integers", () => {
    const text = JSON.stringify(valid).replace("1000000000000000000", "1000000000000000001");
    expect(parseBountyBody(text).rules?.max_allowed_bid).toBe(1_000_000_000_000_000_001n);
    expect(() =>
      parseBountyBody(JSON.stringify(valid).replace("62500000000000000", "6.25e16")),
    ).toThrow(/rules.min_allowed_bid/);
  });

  it.each([
    ["not json", /not JSON/],
    [JSON.stringify({ ...valid, artifact_type: "email" }), /artifact_type/],
    [JSON.stringify({ ...valid, response_url: "ftp://x" }), /response_url/],
    [JSON.stringify({ ...valid, id: "abc" }), /id/],
    [JSON.stringify({ ...valid, expiration: "tomorrow" }), /expiration/],
    [
      JSON.stringify({ ...valid, rules: { min_allowed_bid: 10, max_allowed_bid: 1 } }),
      /min_allowed_bid is above/,
    ],
  ])("refuses %s naming the field", (body, message) => {
    expect(() => parseBountyBody(body)).toThrow(BountyBodyError);
    expect(() => parseBountyBody(body)).toThrow(message);
  });
});

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

describe("address policy", () => {
  it.each([
    ["127.0.0.1"],
    ["10.1.2.3"],
    ["172.20.0.1"],
    ["192.168.1.1"],
    ["169.254.169.254"],
    ["100.64.0.1"],
    ["::1"],
    ["fe80::1"],
    ["fd00::1"],
    ["::ffff:127.0.0.1"],
    ["0.0.0.0"],
    ["not-an-ip"],
  ])("refuses %s", (address) => {
    expect(isPrivateAddress(address)).toBe(true);
  });
  it.each([["93.184.216.34"], ["2606:4700::1111"], ["8.8.8.8"]])("allows %s", (address) => {
    expect(isPrivateAddress(address)).toBe(false);
  });
  it("matches allowed hosts exactly or by subdomain wildcard", () => {
    expect(isAllowedHost("files.example.com", ["*.example.com"])).toBe(true);
    expect(isAllowedHost("example.com", ["*.example.com"])).toBe(false);
    expect(isAllowedHost("evil-example.com", ["example.com"])).toBe(false);
    expect(isAllowedHost("EXAMPLE.com", ["example.com"])).toBe(true);
    expect(isAllowedHost("anything", [])).toBe(false);
  });
});
