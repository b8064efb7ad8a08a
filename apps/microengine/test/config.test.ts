import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { policyFromConfig } from "../src/engine-backends.js";

describe("configuration", () => {
  it("has the documented defaults", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      PORT: 8080,
      HOST: "127.0.0.1",
      YARA_ENGINE: "auto",
      RULES_WATCH: false,
      CACHE_TTL_SECONDS: 3600,
      CACHE_MAX_BYTES: 64 * 1024 * 1024,
      CLAMAV_MAX_DATABASE_AGE_HOURS: 72,
      VERDICT_POLICY: "any",
      BID_STRATEGY: "linear",
      ARTIFACT_ALLOWED_HOSTS: [],
      WEBHOOK_MAX_BYTES: 1024 * 1024,
      BOUNTY_CONCURRENCY: 16,
      BOUNTY_BACKLOG: 1000,
      BOUNTY_BACKLOG_BYTES: 64 * 1024 * 1024,
    });
    expect(config.ENGINE_BACKENDS).toBeUndefined();
    expect(config.RESPONSE_ALLOWED_HOSTS).toBeUndefined();
  });

  it("names the variable in every error", () => {
    expect(() => loadConfig({ PORT: "eighty" })).toThrow(/PORT: /);
    expect(() => loadConfig({ ENGINE_BACKENDS: "clamav,avast" })).toThrow(/ENGINE_BACKENDS/);
    expect(() => loadConfig({ VERDICT_POLICY: "most" })).toThrow(
      /VERDICT_POLICY: use any, majority/,
    );
    expect(() => loadConfig({ CLAMD_SOCKET: "/a", CLAMD_HOST: "b" })).toThrow(ConfigError);
    expect(() => loadConfig({ BOUNTY_CONCURRENCY: "0" })).toThrow(/BOUNTY_CONCURRENCY/);
  });

  it("takes third-party backend modules in ENGINE_BACKENDS: paths and npm:<package>", () => {
    const entries = (value: string) => loadConfig({ ENGINE_BACKENDS: value }).ENGINE_BACKENDS;
    expect(
      entries("eicar, ./my-scanner.mjs, /opt/scan/x.js, npm:acme, npm:@acme/scanner/sub, y.cjs"),
    ).toEqual([
      "eicar",
      "./my-scanner.mjs",
      "/opt/scan/x.js",
      "npm:acme",
      "npm:@acme/scanner/sub",
      "y.cjs",
    ]);
    for (const bad of ["avast", "npm:", "npm:../x", "npm:UPPER", "eicar,eicar"])
      expect(() => entries(bad), bad).toThrow(/ENGINE_BACKENDS: /);
    expect(() => entries("avast")).toThrow(
      'ENGINE_BACKENDS: "avast" is none of eicar, clamav, yara, a module path (./my-scanner.mjs) or npm:<package>',
    );
  });

  it("never echoes a password from a URL", () => {
    let message = "";
    try {
      loadConfig({ QUEUE_URL: "http://:s3cret@redis.internal:6379" });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/QUEUE_URL: a redis:\/\/ or rediss:\/\/ URL/);
    expect(message).not.toContain("s3cret");
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
