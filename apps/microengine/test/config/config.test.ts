import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config/config.js";
import { policyMismatch } from "../../src/config/verdict-policy-setting.js";

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
      VERDICT_POLICY: { text: "any" },
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

  it("sees inside containers by default, with ClamAV's limits, and validates UNPACK and its limits", () => {
    expect(loadConfig({})).toMatchObject({
      UNPACK: true,
      UNPACK_MAX_DEPTH: 17,
      UNPACK_MAX_MEMBERS: 10_000,
      UNPACK_MAX_MEMBER_BYTES: 100 * 1024 * 1024,
      UNPACK_MAX_TOTAL_BYTES: 400 * 1024 * 1024,
    });
    expect(
      loadConfig({ UNPACK: "false", UNPACK_MAX_DEPTH: "3", UNPACK_MAX_TOTAL_BYTES: "1048576" }),
    ).toMatchObject({ UNPACK: false, UNPACK_MAX_DEPTH: 3, UNPACK_MAX_TOTAL_BYTES: 1024 * 1024 });
    expect(() => loadConfig({ UNPACK: "maybe" })).toThrow(/UNPACK: /);
    expect(() => loadConfig({ UNPACK_MAX_DEPTH: "101" })).toThrow(/UNPACK_MAX_DEPTH: /);
    expect(() => loadConfig({ UNPACK_MAX_MEMBERS: "0" })).toThrow(/UNPACK_MAX_MEMBERS: /);
    expect(() => loadConfig({ UNPACK_MAX_MEMBER_BYTES: "1.5" })).toThrow(
      /UNPACK_MAX_MEMBER_BYTES: /,
    );
    expect(() => loadConfig({ UNPACK_MAX_TOTAL_BYTES: "-1" })).toThrow(/UNPACK_MAX_TOTAL_BYTES: /);
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

  it("parses VERDICT_POLICY once, in the schema, and refuses a bad one naming the variable", () => {
    const outcome = (name: string, verdict: "malicious" | "benign") => ({
      name,
      status: "answered" as const,
      durationMs: 1,
      result: { verdict, confidence: 1, metadata: { malware_family: "" } },
    });
    const policyOf = (text: string) => loadConfig({ VERDICT_POLICY: text }).VERDICT_POLICY.policy;
    const split = [outcome("a", "malicious"), outcome("b", "benign")];
    expect(policyOf("quorum:2")(split).verdict).toBe("benign");
    expect(policyOf("weighted:a=2,b=1:2")(split).verdict).toBe("malicious");
    expect(policyOf("majority")(split).verdict).toBe("unknown");
    expect(loadConfig({}).VERDICT_POLICY.text).toBe("any");
    // Before, these passed the pattern and failed later, or quietly became `any`.
    for (const [text, message] of [
      ["quorum:0", "quorum:N needs a whole N >= 1"],
      ["weighted:a=2:0", "the threshold must be a finite number above 0"],
      ["weighted:a=2,a=1:1", "a is given twice"],
      ["weighted:a:1", "is not backend=weight"],
      ["any:1", "use any, majority"],
      ["weighted:clamav=1e309:1", "a finite weight"],
      ["weighted:clamav=:1", "a finite weight"],
      ["weighted:__proto__=1:1", "is not backend=weight"],
      ["weighted:a=1:Infinity", "a finite number above 0"],
      ["quorum:", "quorum:N needs a whole N"],
      ["most", "use any, majority"],
    ] as const)
      expect(() => loadConfig({ VERDICT_POLICY: text }), text).toThrow(
        new RegExp(`VERDICT_POLICY: .*${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
      );
  });

  it("checks the policy against the backends that run: weights for each, a reachable quorum", () => {
    expect(policyMismatch("weighted:ClamAV=5:5", ["clamav", "yara"])).toBe(
      "weighted: ClamAV is not running (running: clamav, yara)",
    );
    expect(policyMismatch("quorum:3", ["clamav", "yara"])).toBe(
      "quorum:3 needs more backends than run (clamav, yara)",
    );
    expect(policyMismatch("weighted:clamav=2,yara=1:2", ["clamav", "yara"])).toBeUndefined();
    expect(policyMismatch("quorum:2", ["clamav", "yara"])).toBeUndefined();
  });
});
