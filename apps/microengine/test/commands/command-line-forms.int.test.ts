import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

// The two ways the READMEs say to run `microengine`: `pnpm -s microengine ...` from the
// repository root, and the launcher scripts/install-cli.sh writes. Both need the app built.
const run = promisify(execFile);
const root = join(import.meta.dirname, "../../../..");
const { version } = JSON.parse(
  await readFile(join(root, "apps/microengine/package.json"), "utf8"),
) as { version: string };

describe("microengine as the READMEs run it", () => {
  it("`pnpm -s microengine` prints only the command's own output (a report can be redirected)", async () => {
    const { stdout } = await run("pnpm", ["-s", "microengine", "--version"], { cwd: root });
    expect(stdout).toBe(`${version}\n`);
  });

  it("scripts/install-cli.sh writes a launcher that runs this checkout's microengine, and says when its directory is not on the PATH", async () => {
    const prefix = await mkdtemp(join(tmpdir(), "engine-cli-"));
    try {
      const installed = await run(join(root, "scripts/install-cli.sh"), [prefix], {
        env: { ...process.env, PATH: "/usr/bin:/bin" },
      });
      expect(installed.stdout).toContain(`wrote ${prefix}/bin/microengine`);
      expect(installed.stderr).toContain(`${prefix}/bin is not on your PATH`);
      const { stdout } = await run(join(prefix, "bin/microengine"), ["--version"], {
        cwd: tmpdir(),
      });
      expect(stdout).toBe(`${version}\n`);
      const quiet = await run(join(root, "scripts/install-cli.sh"), [prefix], {
        env: { ...process.env, PATH: `${prefix}/bin:/usr/bin:/bin` },
      });
      expect(quiet.stderr).toBe("");
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });
});
