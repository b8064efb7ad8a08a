import type { ScanResult } from "@engine/core";
import { beforeAll, describe, expect, it } from "vitest";
import { createSarifLogWriter } from "../../../src/commands/scan/sarif-report.js";
import { sarifValidator } from "../../harness/sarif-schema.js";

/** The parts of a SARIF log these tests read. */
interface SarifLog {
  runs: Array<{
    tool: {
      extensions: Array<{ name: string; version?: string; rules: Array<{ id: string }> }>;
    };
    results: Array<{
      ruleId: string;
      level: string;
      rule: { index: number; toolComponent: { index: number } };
      locations: Array<{ physicalLocation: { artifactLocation: { uri: string } } }>;
    }>;
    invocations: Array<{
      executionSuccessful: boolean;
      toolExecutionNotifications: Array<{ level: string; message: { text: string } }>;
    }>;
  }>;
}

/** The log the writer writes for these entries (scanned files, then problems, then skipped ones). */
async function sarifLog(
  files: Array<{ path: string; result: ScanResult }>,
  problems: Array<{ path: string; problem: string }>,
  options: { root: string; skipped?: Array<{ path: string; problem: string }> },
): Promise<SarifLog> {
  let text = "";
  const writer = await createSarifLogWriter(
    async (chunk) => {
      text += chunk;
    },
    { toolVersion: "0.1.0", root: options.root },
  );
  try {
    for (const { path, result } of files) await writer.scanned(path, result);
    for (const { path, problem } of problems) await writer.problem(path, problem);
    for (const { path, problem } of options.skipped ?? []) await writer.skipped(path, problem);
    await writer.end();
  } finally {
    await writer.close();
  }
  const log = JSON.parse(text) as SarifLog;
  // Written piece by piece, laid out as JSON.stringify would lay out the whole.
  expect(text).toBe(`${JSON.stringify(log, null, 2)}\n`);
  return log;
}

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

describe("createSarifLogWriter", () => {
  const root = "/srv/uploads";
  let report: SarifLog;
  beforeAll(async () => {
    report = await sarifLog(
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
      { root },
    );
  });

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

  it("says the run was not complete when something could not be scanned", async () => {
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
    const empty = await sarifLog([], [], { root });
    expect(empty.runs[0]?.invocations[0]?.executionSuccessful).toBe(true);
    expect(sarifValidator()(empty)).toBe(true);
  });

  it("percent-encodes whole segments (no scheme, fragment or query from a file name), stays valid", async () => {
    const odd = await sarifLog(
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
      { root },
    );
    expect(
      odd.runs[0]?.results.map(
        (result) => result.locations[0]?.physicalLocation.artifactLocation.uri,
      ),
    ).toEqual(["javascript%3Aalert(1)", "a%20%23b%20%3Fc%20%25d.txt"]);
    expect(sarifValidator()(odd)).toBe(true);
  });

  it("counts a file it could not look into (unknown) as not successful, and skipped entries as notes", async () => {
    const unknown = await sarifLog(
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
      { root, skipped: [{ path: "/srv/uploads/pipe", problem: "a FIFO" }] },
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

  it("writes the log as it goes, laid out as JSON.stringify would, notifications spooled in order", async () => {
    let text = "";
    const log = await createSarifLogWriter(
      async (chunk) => {
        text += chunk;
      },
      { toolVersion: "0.1.0", root },
    );
    try {
      await log.scanned(
        "/srv/uploads/a.com",
        combined("malicious", [backend("yara", "malicious", "X")]),
      );
      const head = text;
      // The detection is out before the log is ended: nothing waits for the end of the scan.
      expect(head).toContain('"ruleId": "X"');
      for (let index = 0; index < 500; index += 1) {
        await log.skipped(`/srv/uploads/pipe${index}`, "a FIFO");
        await log.problem(`/srv/uploads/locked${index}`, `cannot read ${index}`);
      }
      await log.scanned(
        "/srv/uploads/b.zip",
        combined("unknown", [
          { ...backend("clamav", "unknown", ""), reason: "SKIPPED:ENCRYPTED" } as ReturnType<
            typeof backend
          >,
        ]),
      );
      await log.end();
    } finally {
      await log.close();
    }
    const parsed = JSON.parse(text) as SarifLog;
    expect(text).toBe(`${JSON.stringify(parsed, null, 2)}\n`);
    expect(sarifValidator()(parsed)).toBe(true);
    const notifications = parsed.runs[0]?.invocations[0]?.toolExecutionNotifications ?? [];
    expect(notifications.map((each) => `${each.level} ${each.message.text}`)).toEqual([
      ...Array.from({ length: 500 }, (_, index) => `error cannot read ${index}`),
      "error could not be looked into (clamav: SKIPPED:ENCRYPTED)",
      ...Array.from({ length: 500 }, () => "note a FIFO"),
    ]);
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
