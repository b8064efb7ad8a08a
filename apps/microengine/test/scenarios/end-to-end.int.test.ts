import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { officialDatabaseFiles } from "../../src/backends/clamav/clamav-coverage.js";
import { type RunningEngine, startEngine } from "../../src/commands/serve-engine.js";
import { simulate } from "../../src/commands/simulate/simulation.js";
import { loadConfig } from "../../src/config/config.js";
import { defaultBidRange } from "../../src/protocol/bid.js";

// The real thing: `serve` with its embedded default (YARA + a managed clamd), driven by `simulate`.
let engine: RunningEngine;
beforeAll(async () => {
  const config = loadConfig({
    WEBHOOK_SECRET: "end-to-end",
    PORT: "0",
    ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
    ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
  });
  engine = await startEngine(config, pino({ level: "silent" }));
});
afterAll(async () => {
  await engine?.close();
});

describe("simulate against serve (ClamAV + YARA)", () => {
  it("gets EICAR malicious with a family and a bid in range, the benign file benign, and a vote", async () => {
    const extra = join(tmpdir(), `engine-e2e-${process.pid}.txt`);
    await writeFile(extra, "an extra artifact given on the command line\n");
    const results = await simulate({
      engineUrl: `${engine.url}/`,
      secret: "end-to-end",
      paths: [extra],
      expirationSeconds: 20,
    });
    expect(
      results
        .map((result) => `${result.artifact}/${result.phase}: ${result.problems.join("; ")}`)
        .filter((line) => !line.endsWith(": ")),
    ).toEqual([]);
    expect(results.map((result) => [result.artifact, result.phase, result.verdict])).toEqual([
      ["eicar.com", "assertion", "malicious"],
      ["eicar.com", "arbitration", "malicious"],
      ["benign.txt", "assertion", "benign"],
      [`engine-e2e-${process.pid}.txt`, "assertion", "benign"],
    ]);
    // EICAR keeps its bid whatever the coverage.
    expect(BigInt(results[0]?.bid ?? "0")).toBeGreaterThan(0n);
    // Which case this machine is (RULES_DIR unset: YARA has the bundled EICAR rule): with no
    // official ClamAV database, a test-signature engine, whose benign answers bid the minimum.
    if (officialDatabaseFiles("/var/lib/clamav").length === 0)
      expect(results.filter((result) => result.verdict === "benign").map((r) => r.bid)).toEqual([
        String(defaultBidRange.min),
        String(defaultBidRange.min),
      ]);
  });

  it("works with artifacts served over HTTP from an allowed host", async () => {
    const results = await simulate({
      engineUrl: `${engine.url}/`,
      secret: "end-to-end",
      serveHttp: true,
      expirationSeconds: 20,
    });
    expect(results.every((result) => result.status === "ok")).toBe(true);
  });

  it("fails a simulation signed with the wrong secret", async () => {
    const results = await simulate({
      engineUrl: `${engine.url}/`,
      secret: "wrong",
      expirationSeconds: 5,
    });
    expect(
      results.every(
        (result) => result.status === "failed" && /HTTP 401/.test(result.problems[0] ?? ""),
      ),
    ).toBe(true);
  });
});
