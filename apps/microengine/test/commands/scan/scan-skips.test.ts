import { mkdir, mkdtemp, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { scanExitCode } from "../../../src/commands/scan/scan-summary.js";
import { walkPaths } from "../../../src/commands/scan/walk-thread.js";
import { fakeScanner, resultOf, scan } from "./scan-fakes.js";

// Issue 22, item 5: a cycle (Debian's /usr/bin/X11 -> .) is skipped and counted, not an error;
// --exclude skips what matches; a file over --max-file-size is unknown without a scan.
let root: string;
let big = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "engine-scan-skips-"));
  await mkdir(join(root, "usr", "bin"), { recursive: true });
  await writeFile(join(root, "usr", "bin", "ls"), "ls\n");
  await symlink(".", join(root, "usr", "bin", "X11")); // as on every Debian machine
  await mkdir(join(root, "usr", "lib", "node_modules", "pkg"), { recursive: true });
  await writeFile(join(root, "usr", "lib", "node_modules", "pkg", "index.js"), "x\n");
  await writeFile(join(root, "usr", "lib", "disk.iso"), "iso\n");
  await writeFile(join(root, "usr", "lib", "keep.txt"), "keep\n");
  await writeFile(join(root, "usr", "lib", ".hidden.iso"), "iso\n");
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});
afterAll(async () => {
  if (big) await rm(join(big, ".."), { recursive: true, force: true });
});

/** A scanner that answers benign and records the paths it was given. */
function recording() {
  const seen: string[] = [];
  const scanner = fakeScanner((path) => {
    seen.push(path.replace(root, ""));
    return resultOf("benign");
  });
  return { scanner, seen };
}

describe("scan skips cycles", () => {
  it("counts /usr/bin/X11 -> . as a cycle, prints it as SKIPPED on stderr, and exits 0", async () => {
    const { scanner, seen } = recording();
    const { summary, stdout, stderr } = await scan(scanner, [join(root, "usr", "bin")]);
    expect(seen).toEqual(["/usr/bin/ls"]);
    expect(summary).toMatchObject({ files: 1, errors: 0, cycles: 1, skipped: 0 });
    expect(scanExitCode(summary)).toBe(0);
    expect(stdout).not.toContain("ERROR");
    expect(stdout).toMatch(/\n {2}cycles {6}1\n/);
    expect(stderr).toContain(
      `SKIPPED ${join(root, "usr", "bin", "X11")}: symbolic link cycle (leads back to a directory being walked)`,
    );
  });

  it("sarif: a cycle is a note, and the run is still successful", async () => {
    const { scanner } = recording();
    const { stdout } = await scan(scanner, [join(root, "usr", "bin")], { format: "sarif" });
    const invocation = JSON.parse(stdout).runs[0].invocations[0];
    expect(invocation.executionSuccessful).toBe(true);
    expect(invocation.toolExecutionNotifications).toMatchObject([
      { level: "note", message: { text: expect.stringMatching(/^symbolic link cycle/) } },
    ]);
  });
});

describe("scan skips a second path to a directory already walked", () => {
  // shared/ is reached three ways: itself, a/link and b/link (not cycles: none leads back up).
  let tree: string;
  beforeAll(async () => {
    tree = await mkdtemp(join(tmpdir(), "engine-scan-revisits-"));
    await mkdir(join(tree, "shared"), { recursive: true });
    await writeFile(join(tree, "shared", "data.txt"), "data\n");
    await mkdir(join(tree, "a"));
    await mkdir(join(tree, "b"));
    await symlink(join(tree, "shared"), join(tree, "a", "link"));
    await symlink("../shared", join(tree, "b", "link"));
  });
  afterAll(async () => {
    await rm(tree, { recursive: true, force: true });
  });

  it("scans it once, prints each other path as SKIPPED ... already walked at <first path>, counts them as revisits, exits 0", async () => {
    const scanned: string[] = [];
    const scanner = fakeScanner((path) => {
      scanned.push(path);
      return resultOf("benign");
    });
    const { summary, stdout, stderr } = await scan(scanner, [tree]);
    expect(scanned).toEqual([join(tree, "a", "link", "data.txt")]);
    expect(summary).toMatchObject({ files: 1, errors: 0, cycles: 0, revisits: 2, skipped: 0 });
    expect(scanExitCode(summary)).toBe(0);
    expect(stdout).toMatch(/\n {2}revisits {4}2\n/);
    expect(stdout).not.toMatch(/cycles|ERROR/);
    expect(stderr.split("\n").filter((line) => line.startsWith("SKIPPED"))).toEqual([
      `SKIPPED ${join(tree, "b", "link")}: already walked at ${join(tree, "a", "link")}`,
      `SKIPPED ${join(tree, "shared")}: already walked at ${join(tree, "a", "link")}`,
    ]);
  });

  it("sarif: each revisit is a note, and the run is still successful; json: nothing on stdout", async () => {
    const scanner = fakeScanner(() => resultOf("benign"));
    const sarif = await scan(scanner, [tree], { format: "sarif" });
    const invocation = JSON.parse(sarif.stdout).runs[0].invocations[0];
    expect(invocation.executionSuccessful).toBe(true);
    const note = {
      level: "note",
      message: { text: `already walked at ${join(tree, "a", "link")}` },
    };
    expect(invocation.toolExecutionNotifications).toMatchObject([note, note]);
    const json = await scan(scanner, [tree], { format: "json" });
    expect(json.stdout.trim().split("\n")).toHaveLength(1); // the one file scanned
    expect(json.stderr).toContain(`SKIPPED ${join(tree, "shared")}: already walked at`);
  });
});

describe("scan --exclude", () => {
  it("skips matching names at any depth, never enters an excluded directory, and counts them", async () => {
    const { scanner, seen } = recording();
    const exclude = ["node_modules", "*.iso"];
    const { summary, stdout, stderr } = await scan(scanner, [root], { exclude });
    expect(seen).toEqual(["/usr/bin/ls", "/usr/lib/keep.txt"]);
    // node_modules once (not entered), disk.iso and .hidden.iso (dot files match like others).
    expect(summary).toMatchObject({ files: 2, excluded: 3, errors: 0 });
    expect(stdout).toMatch(/\n {2}excluded {4}3\n/);
    expect(stderr).not.toMatch(/SKIPPED .*(iso|node_modules)/);
  });

  it("matches a pattern with a / against the path under the scanned path, and one starting with / against the absolute path", async () => {
    const entries = async (patterns: string[]) => {
      const paths: string[] = [];
      for await (const entry of walkPaths([root], { exclude: patterns }))
        if (entry.kind === "file") paths.push(entry.path.replace(root, ""));
      return paths;
    };
    expect(await entries(["usr/lib/*"])).toEqual(["/usr/bin/ls"]);
    expect(await entries(["lib/*"])).toHaveLength(5); // relative to the scanned path: no match
    expect(await entries([`${root}/usr/bin`])).toEqual([
      "/usr/lib/.hidden.iso",
      "/usr/lib/disk.iso",
      "/usr/lib/keep.txt",
      "/usr/lib/node_modules/pkg/index.js",
    ]);
    expect(await entries(["**/pkg/*.js", "usr/bin/**"])).toEqual([
      "/usr/lib/.hidden.iso",
      "/usr/lib/disk.iso",
      "/usr/lib/keep.txt",
    ]);
  });

  it("always scans a path named on the command line", async () => {
    const { scanner, seen } = recording();
    await scan(scanner, [join(root, "usr", "lib", "disk.iso")], { exclude: ["*.iso"] });
    expect(seen).toEqual(["/usr/lib/disk.iso"]);
  });
});

describe("scan --max-file-size (ARTIFACT_MAX_BYTES)", () => {
  beforeAll(async () => {
    big = join(await mkdtemp(join(tmpdir(), "engine-scan-big-")), "big.bin");
    await writeFile(big, "");
    await truncate(big, 2 * 1024 * 1024 + 1); // sparse: no disk used
  });

  it("answers unknown for a file over the limit, without a scan, saying why; exit 2", async () => {
    const { scanner, seen } = recording();
    const { summary, stdout } = await scan(scanner, [big], { maxFileBytes: 2 * 1024 * 1024 });
    expect(seen).toEqual([]);
    expect(summary.counts).toEqual({ unknown: 1 });
    expect(scanExitCode(summary)).toBe(2);
    expect(stdout).toContain(
      `UNKNOWN ${big}: SKIPPED:TOO_LARGE; the file (2097153 bytes) is over --max-file-size / ARTIFACT_MAX_BYTES (2097152 bytes): not scanned`,
    );
  });

  it("json: the unknown answer carries SKIPPED:TOO_LARGE, never benign", async () => {
    const { scanner } = recording();
    const { stdout } = await scan(scanner, [big], { format: "json", maxFileBytes: 1024 });
    expect(JSON.parse(stdout)).toMatchObject({
      path: big,
      verdict: "unknown",
      confidence: 0,
      metadata: { comments: ["SKIPPED:TOO_LARGE", expect.stringContaining("(1024 bytes)")] },
    });
  });

  it("scans a file at the limit", async () => {
    const { scanner, seen } = recording();
    const { summary } = await scan(scanner, [big], { maxFileBytes: 2 * 1024 * 1024 + 1 });
    expect(seen).toEqual([big.replace(root, "")]);
    expect(summary.counts).toEqual({ benign: 1 });
  });
});
