import type { ScanResult } from "@engine/core";
import { describe, expect, it } from "vitest";
import { createMetrics, recordScan } from "../../src/operations/metrics.js";

/** A combined result whose backends carry these `metadata.unpack` reports. */
function resultWith(reports: Record<string, Record<string, unknown> | undefined>): ScanResult {
  return {
    verdict: "unknown",
    confidence: 0,
    metadata: {
      malware_family: "",
      backends: Object.entries(reports).map(([name, unpack]) => ({
        name,
        verdict: "unknown" as const,
        confidence: 0,
        malware_family: "",
        duration_ms: 1,
        metadata: { malware_family: "", ...(unpack ? { unpack } : {}) },
      })),
    },
  };
}

const skip = (code: string, reason: string) => ({ path: "a.zip!/x", code, reason });

describe("the unpack metrics", () => {
  it("count members, decoded bytes and each skip by code and limit, per backend, from the provenance", async () => {
    const metrics = createMetrics();
    recordScan(
      metrics,
      resultWith({
        yara: {
          members: 3,
          bytes: 4096,
          skipped: [
            skip("SKIPPED:ENCRYPTED", "the entry is encrypted"),
            skip("SKIPPED:LIMITS", "a zip container at depth 17, past maxDepth (17)"),
            skip("SKIPPED:LIMITS", "a member decodes to more than maxMemberBytes (10 bytes)"),
            { ...skip("SKIPPED:LIMITS", "more than allowed"), limit: "maxMembers" },
          ],
          skipped_count: 6,
        },
        clamav: { members: 1, bytes: 10, skipped: [], skipped_count: 0 },
        eicar: undefined,
      }),
    );
    // A cached answer ran nothing now.
    recordScan(metrics, {
      ...resultWith({ yara: { members: 50, bytes: 50, skipped: [], skipped_count: 0 } }),
      metadata: {
        ...resultWith({ yara: { members: 50, bytes: 50 } }).metadata,
        cache: { hit: true },
      },
    });
    const text = await metrics.registry.metrics();
    expect(text).toContain('engine_unpack_members_total{backend="yara"} 3');
    expect(text).toContain('engine_unpack_members_total{backend="clamav"} 1');
    expect(text).toContain('engine_unpack_bytes_total{backend="yara"} 4096');
    expect(text).not.toContain('engine_unpack_members_total{backend="eicar"}');
    for (const [code, limit, count] of [
      ["ENCRYPTED", "", 1],
      ["LIMITS", "maxDepth", 1],
      ["LIMITS", "maxMemberBytes", 1],
      ["LIMITS", "maxMembers", 1],
      ["UNLISTED", "", 2],
    ] as const)
      expect(text).toContain(
        `engine_unpack_skipped_total{backend="yara",code="${code}",limit="${limit}"} ${count}`,
      );
  });

  it("count the skips past the first 20 by their code when the report gives skipped_by_code", async () => {
    const metrics = createMetrics();
    recordScan(
      metrics,
      resultWith({
        yara: {
          members: 1,
          bytes: 1,
          skipped: [{ ...skip("SKIPPED:LIMITS", "too deep"), limit: "maxDepth" }],
          skipped_count: 4,
          skipped_by_code: { "SKIPPED:LIMITS": 3, "SKIPPED:ENCRYPTED": 1, "not a code": 9 },
        },
      }),
    );
    const text = await metrics.registry.metrics();
    for (const [code, limit, count] of [
      ["LIMITS", "maxDepth", 1],
      ["LIMITS", "", 2],
      ["ENCRYPTED", "", 1],
    ] as const)
      expect(text).toContain(
        `engine_unpack_skipped_total{backend="yara",code="${code}",limit="${limit}"} ${count}`,
      );
    expect(text).not.toContain('code="UNLISTED"');
    expect(text).not.toContain("not a code");
  });
});
