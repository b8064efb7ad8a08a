import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// deploy/systemd's units, with this checkout's real paths filled in, pass `systemd-analyze
// verify` (Debian's systemd, installed by the test script) without a warning.
const run = promisify(execFile);
const root = join(import.meta.dirname, "../../../..");

/** A unit as an operator installs it here: this checkout and this Node, a real settings file. */
async function filledIn(unit: string, directory: string): Promise<string> {
  const text = (await readFile(join(root, "deploy/systemd", unit), "utf8"))
    .replaceAll("/opt/engine", root)
    .replaceAll("/usr/bin/node", process.execPath)
    .replaceAll("/etc/microengine/microengine.env", join(directory, "microengine.env"));
  expect(text).toContain(
    `ExecStart=${process.execPath} ${root}/apps/microengine/bin/microengine.cjs`,
  );
  // An instance of a template is verified under its instance's name.
  const path = join(directory, unit.replace("@.service", "@1.service"));
  await writeFile(path, text);
  return path;
}

async function verify(path: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run("systemd-analyze", ["verify", path]);
    return { code: 0, output: `${stdout}${stderr}` };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: `${failed.stdout}${failed.stderr}` };
  }
}

describe("deploy/systemd", () => {
  for (const [unit, command] of [
    ["microengine.service", "serve"],
    ["microengine-worker@.service", "worker"],
  ] as const)
    it(`${unit} runs microengine ${command} and passes systemd-analyze verify`, async () => {
      const directory = await mkdtemp(join(tmpdir(), "engine-units-"));
      try {
        await writeFile(join(directory, "microengine.env"), "WEBHOOK_SECRET=change-me\n");
        const path = await filledIn(unit, directory);
        expect(await readFile(path, "utf8")).toMatch(new RegExp(`microengine\\.cjs ${command}\\n`));
        expect(await verify(path)).toEqual({ code: 0, output: "" });
      } finally {
        await rm(directory, { recursive: true, force: true });
      }
    });

  it("fails a unit whose command does not exist (the check can fail)", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-units-"));
    try {
      const path = join(directory, "broken.service");
      await writeFile(path, "[Service]\nExecStart=/nonexistent/node serve\n");
      const result = await verify(path);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain("/nonexistent/node");
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
