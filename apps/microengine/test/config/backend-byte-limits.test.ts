import { describe, expect, it } from "vitest";
import { unpackLimitsOf } from "../../src/backends/unpacking-backend.js";
import { backendByteLimits } from "../../src/config/backend-byte-limits.js";
import { ConfigError, loadConfig } from "../../src/config/config.js";

// Issue 22, item 5: ARTIFACT_MAX_BYTES (scan --max-file-size) raises every backend's limit.
const mebibytes = (count: number) => count * 1024 * 1024;

describe("ARTIFACT_MAX_BYTES", () => {
  it("takes bytes or a binary unit (500M, 2G, 512KiB)", () => {
    expect(loadConfig({ ARTIFACT_MAX_BYTES: "1048576" }).ARTIFACT_MAX_BYTES).toBe(mebibytes(1));
    expect(loadConfig({ ARTIFACT_MAX_BYTES: "500M" }).ARTIFACT_MAX_BYTES).toBe(mebibytes(500));
    expect(loadConfig({ ARTIFACT_MAX_BYTES: "2g" }).ARTIFACT_MAX_BYTES).toBe(2 * 1024 ** 3);
    expect(loadConfig({ ARTIFACT_MAX_BYTES: "512KiB" }).ARTIFACT_MAX_BYTES).toBe(512 * 1024);
    expect(loadConfig({}, { ARTIFACT_MAX_BYTES: "3M" }).ARTIFACT_MAX_BYTES).toBe(mebibytes(3));
  });

  it("refuses what is not a size, naming the variable", () => {
    expect(() => loadConfig({ ARTIFACT_MAX_BYTES: "lots" })).toThrow(
      /ARTIFACT_MAX_BYTES: a size in bytes, or with a unit K, M, G or T/,
    );
    expect(() => loadConfig({ ARTIFACT_MAX_BYTES: "0" })).toThrow(ConfigError);
    expect(() => loadConfig({ ARTIFACT_MAX_BYTES: "2T" })).toThrow(/ARTIFACT_MAX_BYTES/);
  });
});

describe("backendByteLimits", () => {
  it("keeps clamd's, YARA's and unpacking's defaults with the default settings", () => {
    expect(backendByteLimits(loadConfig({}))).toEqual({
      clamdConfig: {
        MaxFileSize: mebibytes(100),
        MaxScanSize: mebibytes(400),
        StreamMaxLength: mebibytes(100),
      },
      clamdMaxStreamBytes: mebibytes(100),
      yaraMaxScanBytes: mebibytes(256),
      unpackMaxMemberBytes: mebibytes(100),
      unpackMaxTotalBytes: mebibytes(400),
    });
  });

  it("raises every limit to at least ARTIFACT_MAX_BYTES, consistently", () => {
    const limits = backendByteLimits(loadConfig({ ARTIFACT_MAX_BYTES: "1G" }));
    const gibibyte = 1024 ** 3;
    expect(limits).toEqual({
      clamdConfig: { MaxFileSize: gibibyte, MaxScanSize: gibibyte, StreamMaxLength: gibibyte },
      clamdMaxStreamBytes: gibibyte,
      yaraMaxScanBytes: gibibyte,
      unpackMaxMemberBytes: gibibyte,
      unpackMaxTotalBytes: gibibyte,
    });
    expect(unpackLimitsOf(loadConfig({ ARTIFACT_MAX_BYTES: "1G" }))).toMatchObject({
      maxMemberBytes: gibibyte,
      maxTotalBytes: gibibyte,
    });
  });

  it("keeps an unpacking bound that is set, and never goes below it for clamd and YARA", () => {
    const small = loadConfig({ ARTIFACT_MAX_BYTES: "1G", UNPACK_MAX_MEMBER_BYTES: "5" });
    expect(unpackLimitsOf(small)).toMatchObject({ maxMemberBytes: 5, maxTotalBytes: 1024 ** 3 });
    expect(backendByteLimits(small).clamdConfig.MaxFileSize).toBe(1024 ** 3);
    const limits = backendByteLimits(
      loadConfig({ ARTIFACT_MAX_BYTES: "1M", UNPACK_MAX_MEMBER_BYTES: String(mebibytes(300)) }),
    );
    expect(limits.clamdConfig).toEqual({
      MaxFileSize: mebibytes(300),
      MaxScanSize: mebibytes(400),
      StreamMaxLength: mebibytes(300),
    });
    expect(limits.yaraMaxScanBytes).toBe(mebibytes(300));
  });
});
