import { execFileSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { eicarBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clamavTestSignaturesWarning } from "../../../src/backends/clamav/clamav-backend.js";
import { tarArchive } from "../../../src/commands/check-archives.js";
import { cliPath, microengine } from "../../harness/cli.js";
import { sarifValidator } from "../../harness/sarif-schema.js";

// `microengine scan` over a hostile tree: a symlink cycle, a dangling link, an unreadable file
// and a FIFO beside a clean file and EICAR, with the embedded default (YARA + a managed clamd
// with the shipped test signatures only).
let tree: string;
const nobody = 65534;

/** True when uid 65534 can read the CLI and its packages (setpriv is there, the path is open). */
function nobodyCanRunTheCli(): boolean {
  try {
    execFileSync(
      "setpriv",
      [
        `--reuid=${nobody}`,
        `--regid=${nobody}`,
        "--clear-groups",
        process.execPath,
        cliPath,
        "--version",
      ],
      { stdio: "ignore" },
    );
    return true;
  } catch {
    return false;
  }
}
beforeAll(async () => {
  tree = await mkdtemp(join(tmpdir(), "engine-scan-tree-"));
  await mkdir(join(tree, "sub"));
  await writeFile(join(tree, "clean.txt"), "a clean file\n");
  await writeFile(join(tree, "sub", "eicar.com"), eicarBytes());
  await writeFile(join(tree, "locked.bin"), eicarBytes());
  await symlink("..", join(tree, "sub", "loop"));
  await symlink("missing-target", join(tree, "dangling"));
  execFileSync("mkfifo", [join(tree, "pipe")]);
  // Readable by everyone but locked.bin, for the run as an unprivileged user.
  await chmod(tree, 0o755);
  await chmod(join(tree, "sub"), 0o755);
  await chmod(join(tree, "locked.bin"), 0o000);
});
afterAll(async () => {
  await rm(tree, { recursive: true, force: true });
});

describe("microengine scan", () => {
  it("says which backends ran and warns that ClamAV has test signatures only", async () => {
    const { stderr } = await microengine(["scan", join(tree, "clean.txt")]);
    // YARA_ENGINE=auto: libyara when @engine/yara-native is built, else YARA-X.
    expect(stderr).toMatch(
      /yara +on +(libyara \d+\.\d+\.\d+|YARA-X \d+\.\d+\.\d+ \(WebAssembly\)), 1 rule file/,
    );
    expect(stderr).toMatch(/clamav +on +managed clamd \(shipped signatures.*ClamAV \d+\.\d+/);
    expect(stderr).toContain(`WARNING: ${clamavTestSignaturesWarning}`);
  });

  it("scans everything else, reports each bad entry, skips the cycle, lists detections with family and backend, exits 2", async () => {
    const { code, stdout, stderr } = await microengine(["scan", tree]);
    expect(code).toBe(2);
    const lines = stdout.split("\n");
    expect(lines).toContain(
      `MALICIOUS ${join(tree, "sub", "eicar.com")}: EICAR-Test-File (yara), Engine.Test.Eicar-Body.UNOFFICIAL (clamav)`,
    );
    expect(stdout).not.toContain(join(tree, "sub", "loop"));
    expect(stderr).toContain(
      `SKIPPED ${join(tree, "sub", "loop")}: symbolic link cycle (leads back to a directory being walked)`,
    );
    expect(lines).toContain(
      `ERROR ${join(tree, "dangling")}: dangling symbolic link (its target does not exist)`,
    );
    // Root reads locked.bin: it is scanned and found (the unreadable case runs as nobody below).
    expect(lines).toContain(
      `MALICIOUS ${join(tree, "locked.bin")}: EICAR-Test-File (yara), Engine.Test.Eicar-Body.UNOFFICIAL (clamav)`,
    );
    expect(stdout).toMatch(/malicious +2\n/);
    expect(stdout).toMatch(/benign +1\n/);
    expect(stdout).toMatch(/errors +1\n/);
    expect(stdout).toMatch(/skipped +1\n/);
    expect(stdout).toMatch(/cycles +1\n/);
  });

  it("makes a file whose read fails an error line for that file, and still scans the rest", async () => {
    // /proc/self/mem: a regular file that anyone, root included, fails to read (EIO).
    const failing = await mkdtemp(join(tmpdir(), "engine-scan-failing-"));
    try {
      await writeFile(join(failing, "clean.txt"), "a clean file\n");
      await writeFile(join(failing, "eicar.com"), eicarBytes());
      await symlink("/proc/self/mem", join(failing, "broken.bin"));
      const { code, stdout } = await microengine(["scan", "--backends", "eicar", failing]);
      expect(code).toBe(2);
      expect(stdout).toContain(
        `ERROR ${join(failing, "broken.bin")}: ARTIFACT_UNAVAILABLE: @engine/core: the file ${join(failing, "broken.bin")} could not be read (EIO)`,
      );
      expect(stdout).toContain(`MALICIOUS ${join(failing, "eicar.com")}: EICAR-Test-File (eicar)`);
      expect(stdout).toMatch(/benign +1\n/);
      expect(stdout).toMatch(/errors +1\n/);
    } finally {
      await rm(failing, { recursive: true, force: true });
    }
  });

  // As an unprivileged user (root reads anything): only where that user can run this checkout
  // (a clone under a private temporary directory cannot).
  it.runIf(nobodyCanRunTheCli())(
    "makes a file without read permission an error line for that file",
    async () => {
      const { code, stdout } = await microengine(
        ["scan", "--backends", "eicar", tree],
        {},
        {
          user: nobody,
        },
      );
      expect(code).toBe(2);
      expect(stdout).toMatch(
        new RegExp(
          `ERROR ${join(tree, "locked.bin")}: ARTIFACT_UNAVAILABLE: .*not readable by this process`,
        ),
      );
      expect(stdout).toContain(
        `MALICIOUS ${join(tree, "sub", "eicar.com")}: EICAR-Test-File (eicar)`,
      );
      expect(stdout).toMatch(/benign +1\n/);
      expect(stdout).toMatch(/errors +2\n/);
    },
  );

  it("looks inside archives and names the member (--no-unpack scans the archive as it is)", async () => {
    const archive = join(tree, "..", `${tree.split("/").pop()}-eicar.tar.gz`);
    await writeFile(archive, gzipSync(tarArchive([{ name: "eicar.com", data: eicarBytes() }])));
    try {
      const inside = await microengine(["scan", "--backends", "yara", archive]);
      expect(inside.code).toBe(1);
      expect(inside.stdout).toMatch(
        /^MALICIOUS .*-eicar\.tar\.gz: \S+ \(yara in [^ ]*-eicar\.tar\.gz!\/[^ ]*-eicar\.tar\)$/m,
      );
      const outside = await microengine(["scan", "--no-unpack", "--backends", "yara", archive]);
      expect(outside.code).toBe(0);
      expect(outside.stdout).toMatch(/benign +1\n/);
    } finally {
      await rm(archive, { force: true });
    }
  });

  it("exits 0 on a clean file and 1 on a detection when nothing failed", async () => {
    expect((await microengine(["scan", join(tree, "clean.txt")])).code).toBe(0);
    expect((await microengine(["scan", join(tree, "sub", "eicar.com")])).code).toBe(1);
  });

  it("writes SARIF 2.1.0 that the official schema accepts: a result per detection, backends as tool components", async () => {
    const { code, stdout, stderr } = await microengine(
      ["scan", "--format", "sarif", tree],
      {},
      {
        cwd: tree,
      },
    );
    expect(code).toBe(2);
    const log = JSON.parse(stdout);
    const validate = sarifValidator();
    expect(validate(log), JSON.stringify(validate.errors)).toBe(true);
    const run = log.runs[0];
    expect(run.tool.driver.name).toBe("microengine");
    expect(run.tool.extensions.map((component: { name: string }) => component.name).sort()).toEqual(
      ["clamav", "yara"],
    );
    const detections = run.results.map(
      (result: {
        ruleId: string;
        rule: { toolComponent: { index: number } };
        locations: Array<{ physicalLocation: { artifactLocation: { uri: string } } }>;
      }) =>
        `${result.locations[0]?.physicalLocation.artifactLocation.uri} ${result.ruleId} ${run.tool.extensions[result.rule.toolComponent.index].name}`,
    );
    expect(detections.sort()).toEqual([
      "locked.bin EICAR-Test-File yara",
      "locked.bin Engine.Test.Eicar-Body.UNOFFICIAL clamav",
      "sub/eicar.com EICAR-Test-File yara",
      "sub/eicar.com Engine.Test.Eicar-Body.UNOFFICIAL clamav",
    ]);
    expect(run.invocations[0].executionSuccessful).toBe(false);
    expect(
      run.invocations[0].toolExecutionNotifications.map(
        (notification: { level: string; message: { text: string } }) =>
          `${notification.level} ${notification.message.text}`,
      ),
    ).toEqual([
      "error dangling symbolic link (its target does not exist)",
      "note a FIFO",
      "note symbolic link cycle (leads back to a directory being walked)",
    ]);
    // Humans still see the errors, on stderr.
    expect(stderr).toMatch(/ERROR .*dangling: dangling symbolic link/);
  });

  it("quotes a file name with a newline instead of letting it forge a report line", async () => {
    const odd = await mkdtemp(join(tmpdir(), "engine-scan-odd-"));
    try {
      await writeFile(join(odd, "x\nMALICIOUS fake"), eicarBytes());
      const { stdout } = await microengine(["scan", "--backends", "eicar", odd]);
      expect(stdout).toContain(
        `MALICIOUS ${JSON.stringify(join(odd, "x\nMALICIOUS fake"))}: EICAR-Test-File (eicar)`,
      );
      expect(stdout.split("\n").filter((line) => line.startsWith("MALICIOUS fake"))).toEqual([]);
    } finally {
      await rm(odd, { recursive: true, force: true });
    }
  });

  it("refuses bad flags and an empty path naming them (exit 2), instead of guessing", async () => {
    const timeout = await microengine(["scan", "--backends", "eicar", "--timeout", "abc", tree]);
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toMatch(/--timeout: a whole number from 1/);
    const empty = await microengine(["scan", "--backends", "eicar", ""]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/an empty path was given/);
  });

  it("--exclude (repeatable) skips what matches and counts it", async () => {
    const { code, stdout } = await microengine([
      "scan",
      "--backends",
      "eicar",
      "--exclude",
      "*.com",
      "--exclude",
      "locked.bin",
      tree,
    ]);
    expect(stdout).not.toMatch(/eicar\.com|locked\.bin/);
    expect(stdout).toMatch(/malicious +0\n/);
    expect(stdout).toMatch(/excluded +2\n/);
    expect(code).toBe(2); // the dangling link is still an error
  });

  it("writes one JSON line per entry, errors included", async () => {
    const { stdout } = await microengine(["scan", "--json", "--backends", "eicar", tree]);
    const entries = stdout
      .trim()
      .split("\n")
      .map(
        (line) => JSON.parse(line) as { path: string; verdict: string; error?: { code: string } },
      );
    expect(
      entries
        .map(
          (entry) => `${entry.path.replace(tree, "")} ${entry.verdict} ${entry.error?.code ?? ""}`,
        )
        .sort(),
    ).toEqual([
      "/clean.txt benign ",
      "/dangling unknown ARTIFACT_UNAVAILABLE",
      "/locked.bin malicious ",
      "/sub/eicar.com malicious ",
    ]);
  });
});
