import type { ScanResult } from "@engine/core";
import { describe, expect, it } from "vitest";
import { sarifReport } from "../src/sarif-report.js";
import { sarifValidator } from "./sarif-schema.js";

const backend = (name: string, verdict: ScanResult["verdict"], family: string) => ({
  name,
  verdict,
  confidence: 1,
  malware_family: family,
  duration_ms: 3,
  metadata: { malware_family: family, scanner: { vendor_version: `${name}-1.0` } },
});

const combined = (verdict: ScanResult["verdict"], backends: ReturnType<typeof backend>[]) => ({
  verdict,
  confidence: 1,
  metadata: { malware_family: backends[0]?.malware_family ?? "", backends },
});

describe("sarifReport", () => {
  const root = "/srv/uploads";
  const report = sarifReport(
    [
      {
        path: "/srv/uploads/a b/eicar.com",
        result: combined("malicious", [
          backend("clamav", "malicious", "Eicar-Test-Signature"),
          backend("yara", "malicious", "EICAR-Test-File"),
        ]),
      },
      {
        path: "/srv/uploads/odd.bin",
        result: combined("suspicious", [
          backend("clamav", "benign", ""),
          backend("yara", "suspicious", "Packed.Generic"),
        ]),
      },
      {
        path: "/srv/uploads/clean.txt",
        result: combined("benign", [backend("clamav", "benign", "")]),
      },
      {
        path: "/elsewhere/second.com",
        result: combined("malicious", [backend("clamav", "malicious", "Eicar-Test-Signature")]),
      },
    ],
    [{ path: "/srv/uploads/locked", problem: "cannot read: permission denied" }],
    { toolVersion: "0.1.0", root },
  );

  it("is valid SARIF 2.1.0 against the official schema", () => {
    const validate = sarifValidator();
    expect(validate(report), JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it("has one result per detection, the family as rule id and the backend as tool component", () => {
    const run = report.runs[0];
    const summary = run?.results.map((result) => [
      result.ruleId,
      run.tool.extensions[result.rule.toolComponent.index]?.name,
      run.tool.extensions[result.rule.toolComponent.index]?.rules[result.rule.index]?.id,
      result.level,
      result.locations[0]?.physicalLocation.artifactLocation.uri,
    ]);
    expect(summary).toEqual([
      ["Eicar-Test-Signature", "clamav", "Eicar-Test-Signature", "error", "a%20b/eicar.com"],
      ["EICAR-Test-File", "yara", "EICAR-Test-File", "error", "a%20b/eicar.com"],
      ["Packed.Generic", "yara", "Packed.Generic", "warning", "odd.bin"],
      [
        "Eicar-Test-Signature",
        "clamav",
        "Eicar-Test-Signature",
        "error",
        "file:///elsewhere/second.com",
      ],
    ]);
    expect(run?.tool.extensions.map((component) => [component.name, component.version])).toEqual([
      ["clamav", "clamav-1.0"],
      ["yara", "yara-1.0"],
    ]);
    // One rule per family and backend, however many files it was found in.
    expect(run?.tool.extensions[0]?.rules.map((rule) => rule.id)).toEqual(["Eicar-Test-Signature"]);
  });

  it("says the run was not complete when something could not be scanned", () => {
    const invocation = report.runs[0]?.invocations[0];
    expect(invocation?.executionSuccessful).toBe(false);
    expect(invocation?.toolExecutionNotifications).toEqual([
      {
        level: "error",
        message: { text: "cannot read: permission denied" },
        locations: [
          { physicalLocation: { artifactLocation: { uri: "locked", uriBaseId: "SCANROOT" } } },
        ],
      },
    ]);
    expect(
      sarifReport([], [], { toolVersion: "0.1.0", root }).runs[0]?.invocations[0]
        ?.executionSuccessful,
    ).toBe(true);
  });

  it("percent-encodes whole segments (no scheme, fragment or query from a file name), stays valid", () => {
    const odd = sarifReport(
      [
        {
          path: "/srv/uploads/javascript:alert(1)",
          result: combined("malicious", [backend("c", "malicious", "X")]),
        },
        {
          path: "/srv/uploads/a #b ?c %d.txt",
          result: combined("malicious", [backend("c", "malicious", "X")]),
        },
      ],
      [],
      { toolVersion: "0.1.0", root },
    );
    expect(
      odd.runs[0]?.results.map(
        (result) => result.locations[0]?.physicalLocation.artifactLocation.uri,
      ),
    ).toEqual(["javascript%3Aalert(1)", "a%20%23b%20%3Fc%20%25d.txt"]);
    expect(sarifValidator()(odd)).toBe(true);
  });

  it("counts a file it could not look into (unknown) as not successful, and skipped entries as notes", () => {
    const unknown = sarifReport(
      [
        {
          path: "/srv/uploads/secret.zip",
          result: combined("unknown", [
            { ...backend("clamav", "unknown", ""), reason: "SKIPPED:ENCRYPTED" } as ReturnType<
              typeof backend
            >,
          ]),
        },
      ],
      [],
      { toolVersion: "0.1.0", root, skipped: [{ path: "/srv/uploads/pipe", problem: "a FIFO" }] },
    );
    const invocation = unknown.runs[0]?.invocations[0];
    expect(invocation?.executionSuccessful).toBe(false);
    expect(
      invocation?.toolExecutionNotifications.map((each) => [each.level, each.message.text]),
    ).toEqual([
      ["error", "could not be looked into (clamav: SKIPPED:ENCRYPTED)"],
      ["note", "a FIFO"],
    ]);
    expect(sarifValidator()(unknown)).toBe(true);
  });

  it("is refused by the schema when broken (the validator can fail)", () => {
    const validate = sarifValidator();
    const broken = structuredClone(report) as {
      runs: Array<{ results: Array<{ level: string }> }>;
    };
    (broken.runs[0]?.results[0] as { level: string }).level = "fatal";
    expect(validate(broken)).toBe(false);
  });
});
