import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { eicarBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The built CLI, as operators run it (turbo builds it before test:int).
const cli = join(import.meta.dirname, "../dist/cli.js");
const run = promisify(execFile);
async function microengine(args: string[], environment: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
      env: { ...process.env, LOG_LEVEL: "warn", ...environment },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-cli-"));
  await mkdir(join(directory, "nested"));
  await writeFile(join(directory, "clean.txt"), "a clean file\n");
  await writeFile(join(directory, "nested", "eicar.com"), eicarBytes());
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("microengine", () => {
  it("scan: one JSON line per artifact, recursively, exit code 1 when something is malicious", async () => {
    const { code, stdout } = await microengine(["scan", "--json", directory]);
    expect(code).toBe(1);
    const lines = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { path: string; verdict: string });
    expect(lines.map((line) => [line.path.replace(directory, ""), line.verdict]).sort()).toEqual([
      ["/clean.txt", "benign"],
      ["/nested/eicar.com", "malicious"],
    ]);
  });

  it("scan: a summary table, exit code 0 when clean and 2 on errors", async () => {
    const clean = await microengine(["scan", "--backends", "eicar", join(directory, "clean.txt")]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/benign\s+1/);
    expect(
      (await microengine(["scan", "--backends", "eicar", join(directory, "missing")])).code,
    ).toBe(2);
  });

  it("check: passes with the embedded default and prints versions", async () => {
    const { code, stdout } = await microengine(["check"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/PASS EICAR: malicious/);
    expect(stdout).toMatch(/yara: version \S+, signatures \S+/);
    expect(stdout).toMatch(/engine healthy/);
  });

  it("refuses bad configuration naming the variable, and serve without WEBHOOK_SECRET", async () => {
    const badPort = await microengine(["check"], { PORT: "eighty" });
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/PORT: /);
    const badFlag = await microengine(["check", "--backends", "avast"]);
    expect(badFlag.stderr).toMatch(/ENGINE_BACKENDS/);
    const noSecret = await microengine(["serve", "--backends", "eicar", "--port", "0"], {
      WEBHOOK_SECRET: "",
    });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/WEBHOOK_SECRET: required/);
  });
});
