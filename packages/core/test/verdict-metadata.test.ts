import { describe, expect, it } from "vitest";
import {
  InvalidResultError,
  parseScanResult,
  scannerEnvironment,
  verdictMetadata,
  verdictMetadataSchema,
} from "../src/index.js";

const polyswarmExample = {
  malware_family: "Eicar-Test-Signature",
  scanner: {
    version: "1.2.3",
    vendor_version: "1.4.6",
    signatures_version: "27000",
    environment: { operating_system: "Linux", architecture: "x86_64" },
  },
  domains: [],
  ip_addresses: [],
  heuristic: false,
  stix: [{ schema: "oasis", signature: "[file:hashes.md5 = '44d8']" }],
  product: "clamav",
  comments: ["found"],
  backend_specific: { anything: 1 },
};

describe("verdictMetadataSchema", () => {
  it("accepts the PolySwarm example and keeps extra keys", () => {
    expect(verdictMetadataSchema.parse(polyswarmExample)).toEqual(polyswarmExample);
  });

  it("requires malware_family", () => {
    const { malware_family: _, ...withoutFamily } = polyswarmExample;
    expect(verdictMetadataSchema.safeParse(withoutFamily).success).toBe(false);
  });

  it.each([["1.2.3"], ["20"], ["0.1"]])("accepts scanner.version %s", (version) => {
    expect(
      verdictMetadataSchema.safeParse({ malware_family: "", scanner: { version } }).success,
    ).toBe(true);
  });

  it.each([["v1.2"], ["1.2.3-beta"], [""]])(
    "rejects scanner.version %s (digits and dots only)",
    (version) => {
      expect(
        verdictMetadataSchema.safeParse({ malware_family: "", scanner: { version } }).success,
      ).toBe(false);
    },
  );

  it("rejects wrong types in known keys", () => {
    expect(verdictMetadataSchema.safeParse({ malware_family: "x", domains: "a.com" }).success).toBe(
      false,
    );
    expect(verdictMetadataSchema.safeParse({ malware_family: "x", heuristic: "yes" }).success).toBe(
      false,
    );
  });
});

describe("verdictMetadata builder", () => {
  it("builds validated metadata with the environment filled in", () => {
    const metadata = verdictMetadata("Win.Trojan.Agent")
      .product("clamav")
      .scanner({ version: "0.1.0", vendor_version: "1.4.6", signatures_version: "27000" })
      .domain("evil.example", "c2.example")
      .ipAddress("192.0.2.1")
      .heuristic()
      .stix({ schema: "s", signature: "sig" })
      .comment("first")
      .comment("second")
      .set("clamav", { raw: "stream: Win.Trojan.Agent FOUND" })
      .build();
    expect(metadata).toEqual({
      malware_family: "Win.Trojan.Agent",
      product: "clamav",
      scanner: {
        version: "0.1.0",
        vendor_version: "1.4.6",
        signatures_version: "27000",
        environment: scannerEnvironment(),
      },
      domains: ["evil.example", "c2.example"],
      ip_addresses: ["192.0.2.1"],
      heuristic: true,
      stix: [{ schema: "s", signature: "sig" }],
      comments: ["first", "second"],
      clamav: { raw: "stream: Win.Trojan.Agent FOUND" },
    });
    expect(scannerEnvironment().operating_system).toBe(
      process.platform === "linux" ? "Linux" : expect.any(String),
    );
  });

  it("throws a typed error on invalid values", () => {
    expect(() => verdictMetadata().scanner({ version: "not a version" }).build()).toThrow(
      InvalidResultError,
    );
  });

  it("returns independent copies", () => {
    const builder = verdictMetadata("A").comment("one");
    const first = builder.build();
    first.comments?.push("mutated");
    expect(builder.build().comments).toEqual(["one"]);
  });
});

describe("parseScanResult", () => {
  it("returns a valid result", () => {
    const result = { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    expect(parseScanResult(result, "x")).toEqual(result);
  });

  it.each([
    [{ verdict: "clean", confidence: 1, metadata: { malware_family: "" } }],
    [{ verdict: "benign", confidence: 1.5, metadata: { malware_family: "" } }],
    [{ verdict: "benign", confidence: -0.1, metadata: { malware_family: "" } }],
    [{ verdict: "benign", confidence: 1, metadata: {} }],
    [{ verdict: "benign", metadata: { malware_family: "" } }],
    [null],
    [true],
  ])("throws InvalidResultError naming the scanner for %j", (value) => {
    expect(() => parseScanResult(value, "broken")).toThrowError(
      /broken returned an invalid scan result/,
    );
    try {
      parseScanResult(value, "broken");
    } catch (error) {
      expect(InvalidResultError.isInstance(error)).toBe(true);
      expect((error as InvalidResultError).scanner).toBe("broken");
    }
  });
});

describe("parseOptions", () => {
  it("returns the options with defaults, or throws InvalidOptionsError naming the factory and the option", async () => {
    const { parseOptions, InvalidOptionsError } = await import("../src/index.js");
    const { z } = await import("zod");
    const schema = z.strictObject({ port: z.number().int().default(3310) });
    expect(parseOptions(schema, {}, { where: "@engine/x: createX" })).toEqual({ port: 3310 });
    expect(() =>
      parseOptions(schema, { port: "a" }, { where: "@engine/x: createX", hint: "see README" }),
    ).toThrow(/@engine\/x: createX: .*port/s);
    const error = (() => {
      try {
        parseOptions(schema, { colour: 1 }, { where: "w", hint: "see README" });
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(InvalidOptionsError.isInstance(error)).toBe(true);
    expect((error as InstanceType<typeof InvalidOptionsError>).hint).toBe("see README");
  });
});
