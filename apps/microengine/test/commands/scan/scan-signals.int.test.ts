import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath } from "../../harness/cli.js";
import { tinyFiles } from "./scan-fakes.js";

// Issue 22, "processes left behind" (scan part): SIGINT, SIGTERM or SIGHUP sent to a running
// `microengine scan` (the built CLI, the embedded default: YARA + a managed clamd) stop it
// cleanly: the managed clamd is stopped, its temporary directory removed, the report ends
// with the counts so far, and the exit code is 128 + the signal.
let tree: string;
beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), "engine-scan-signals-"));
  // Enough that one scan at a time is far from done when the signal comes (4,000 took ~1.8 s
  // by now: a run could end before the first progress line, which comes after 1 s).
  await tinyFiles(tree, 12000);
});
afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

/** The pids of `parent`'s children named `name`. */
async function childrenNamed(parent: number, name: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
    if (status.includes(`\nPPid:\t${parent}\n`) && status.startsWith(`Name:\t${name}\n`))
      found.push(Number(entry));
  }
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once `done()` is true (calling `refresh` before each look), or rejects after `ms`. */
async function until(
  done: () => boolean,
  ms: number,
  what: string,
  refresh: () => Promise<void> = async () => {},
): Promise<void> {
  const deadline = Date.now() + ms;
  for (await refresh(); !done(); await refresh()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A running `microengine scan --progress --concurrency 1 <tree>`, its output so far and its end. */
function startScan(temporary: string) {
  const child = spawn(
    process.execPath,
    [cliPath, "scan", "--progress", "--concurrency", "1", tree],
    {
      env: { ...process.env, LOG_LEVEL: "warn", TMPDIR: temporary },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const output = { stdout: "", stderr: "" };
  child.stdout.on("data", (data: Buffer) => {
    output.stdout += data.toString();
  });
  child.stderr.on("data", (data: Buffer) => {
    output.stderr += data.toString();
  });
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  const end = () =>
    Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no exit: ${output.stderr}`)), 30_000),
      ),
    ]);
  return { child, output, end };
}

/** The managed clamds (children named clamd) of `pid`, once there is one, within `ms`. */
async function clamdsOf(pid: number, ms: number): Promise<number[]> {
  let found: number[] = [];
  await until(
    () => found.length > 0,
    ms,
    "a clamd child",
    async () => {
      found = await childrenNamed(pid, "clamd");
    },
  );
  return found;
}

describe("microengine scan, signalled", () => {
  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
    ["SIGHUP", 129],
  ] as const)(
    "%s: stops clamd, removes its directory, prints the counts so far, exits %i",
    async (signal, code) => {
      // A private temporary directory: the managed clamd's directory is made there.
      const temporary = await mkdtemp(join(tmpdir(), "engine-scan-signals-tmp-"));
      try {
        const { child, output, end } = startScan(temporary);
        await until(
          () => output.stderr.includes("scan progress: "),
          60_000,
          "the first progress line",
        );
        const clamds = await clamdsOf(child.pid as number, 1000);
        expect(clamds).toHaveLength(1);
        const directories = (await readdir(temporary)).filter((name) =>
          name.startsWith("engine-clamd-"),
        );
        expect(directories).toHaveLength(1);

        child.kill(signal);
        expect(await end()).toEqual({ code, signal: null });

        const { stdout, stderr } = output;
        expect(stderr).toContain(`microengine: ${signal}: stopping the scan and the backends`);
        expect(stderr).toMatch(
          new RegExp(`scan interrupted by ${signal}: \\d+ found, \\d+ files scanned`),
        );
        expect(stdout).toMatch(
          new RegExp(
            `\\n {2}scanned {5}\\d+\\n\\n {2}interrupted by ${signal}: the counts are those so far\\n$`,
          ),
        );
        const scanned = Number(/ {2}scanned {5}(\d+)/.exec(stdout)?.[1]);
        expect(scanned).toBeGreaterThan(0);
        expect(scanned).toBeLessThan(12000);
        expect(alive(clamds[0] as number)).toBe(false);
        expect(await readdir(temporary)).toEqual([]);
      } finally {
        await rm(temporary, { recursive: true, force: true });
      }
    },
  );

  it("a signal while the backends start: the managed clamd still ends and its directory goes (exit 143)", async () => {
    const temporary = await mkdtemp(join(tmpdir(), "engine-scan-signals-tmp-"));
    try {
      const { child, output, end } = startScan(temporary);
      // As soon as clamd is spawned (it answers PING later; YARA may still be loading).
      const clamds = await clamdsOf(child.pid as number, 60_000);
      child.kill("SIGTERM");
      expect(await end()).toEqual({ code: 143, signal: null });
      expect(output.stdout).toMatch(/ {2}scanned {5}0\n\n {2}interrupted by SIGTERM/);
      expect(alive(clamds[0] as number)).toBe(false);
      expect(await readdir(temporary)).toEqual([]);
    } finally {
      await rm(temporary, { recursive: true, force: true });
    }
  });
});
