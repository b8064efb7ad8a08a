import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { directoryKey, type WalkEntry } from "../../../src/commands/scan/file-walk.js";
import { walkPaths } from "../../../src/commands/scan/walk-thread.js";

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "engine-walk-"));
  await mkdir(join(root, "a", "b"), { recursive: true });
  await writeFile(join(root, "a", "one.txt"), "1");
  await writeFile(join(root, "a", "b", "two.txt"), "2");
  await symlink("..", join(root, "a", "b", "up")); // a loop back to a parent
  await symlink("self", join(root, "self")); // a link to itself
  await symlink("missing", join(root, "dangling"));
  await symlink(join(root, "a", "b"), join(root, "again")); // the same directory twice
  await symlink(join(root, "a", "one.txt"), join(root, "file-link"));
  execFileSync("mkfifo", [join(root, "pipe")]);
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function walk(paths: string[]): Promise<string[]> {
  const seen: WalkEntry[] = [];
  for await (const entry of walkPaths(paths)) seen.push(entry);
  return seen.map((entry) =>
    (entry.kind === "file"
      ? `file ${entry.path}`
      : entry.kind === "problem"
        ? `problem ${entry.path}: ${entry.problem}`
        : `skipped ${entry.path}: ${entry.reason}`
    ).replaceAll(root, ""),
  );
}

describe("walkPaths", () => {
  it("skips cycles and second paths, reports dangling links, links to themselves and FIFOs per entry, walks everything else once", async () => {
    expect(await walk([root, join(root, "nowhere")])).toEqual([
      "file /a/b/two.txt",
      "skipped /a/b/up: symbolic link cycle (leads back to a directory being walked)",
      "file /a/one.txt",
      "skipped /again: already walked at /a/b",
      "problem /dangling: dangling symbolic link (its target does not exist)",
      "file /file-link",
      "skipped /pipe: a FIFO",
      "problem /self: cannot follow symbolic link: symbolic link loop",
      "problem /nowhere: cannot read: no such file or directory",
    ]);
  });

  it("reports a file name that is not UTF-8, and a FIFO named on the command line, as errors", async () => {
    const odd = await mkdtemp(join(tmpdir(), "engine-walk-odd-"));
    try {
      await writeFile(Buffer.from(`${odd}/bad-\xff-name`, "latin1"), "x");
      await writeFile(join(odd, "good.txt"), "x");
      expect(await walk([odd, join(root, "pipe")])).toEqual([
        `problem ${odd.replace(root, "")}/bad-\ufffd-name: the file name is not valid UTF-8: not scanned (rename it)`,
        `file ${odd.replace(root, "")}/good.txt`,
        "problem /pipe: a FIFO: nothing to scan",
      ]);
    } finally {
      await rm(odd, { recursive: true, force: true });
    }
  });

  it("enters a directory reached by two paths once, whichever comes first, and says so at the second", async () => {
    // again -> a/b, whose `up` is a/b/.. = a: entered through the link, so the path `a` is a revisit.
    expect(await walk([join(root, "again"), join(root, "a")])).toEqual([
      "file /again/two.txt",
      "skipped /again/up/b: symbolic link cycle (leads back to a directory being walked)",
      "file /again/up/one.txt",
      "skipped /a: already walked at /again/up",
    ]);
  });

  it("yields a second path to a directory walked before (not a cycle) as a revisit, naming the first", async () => {
    const tree = await mkdtemp(join(tmpdir(), "engine-walk-twice-"));
    try {
      await mkdir(join(tree, "data", "deep"), { recursive: true });
      await writeFile(join(tree, "data", "deep", "f.txt"), "f");
      await mkdir(join(tree, "x"));
      await symlink(join(tree, "data"), join(tree, "x", "to-data"));
      await symlink("data/deep", join(tree, "y")); // relative, to a directory inside it
      const entries: WalkEntry[] = [];
      for await (const entry of walkPaths([tree])) entries.push(entry);
      expect(entries).toEqual([
        { kind: "file", path: join(tree, "data", "deep", "f.txt"), size: 1 },
        {
          kind: "skipped",
          path: join(tree, "x", "to-data"),
          reason: `already walked at ${join(tree, "data")}`,
          cause: "revisit",
        },
        {
          kind: "skipped",
          path: join(tree, "y"),
          reason: `already walked at ${join(tree, "data", "deep")}`,
          cause: "revisit",
        },
      ]);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it("survives a link chain that doubles at every level (no exponential walk)", async () => {
    const chain = await mkdtemp(join(tmpdir(), "engine-walk-chain-"));
    try {
      for (let level = 0; level < 24; level += 1) {
        await mkdir(join(chain, `d${level}`));
        await writeFile(join(chain, `d${level}`, "f"), String(level));
      }
      for (let level = 0; level < 23; level += 1) {
        await symlink(join(chain, `d${level + 1}`), join(chain, `d${level}`, "x"));
        await symlink(join(chain, `d${level + 1}`), join(chain, `d${level}`, "y"));
      }
      const started = performance.now();
      const entries = await walk([join(chain, "d0")]);
      expect(entries.filter((entry) => entry.startsWith("file")).length).toBe(24);
      // d(n)/y -> d(n+1), entered through d(n)/x: one revisit per level, never walked again.
      expect(entries.filter((entry) => entry.includes(": already walked at ")).length).toBe(23);
      expect(performance.now() - started).toBeLessThan(5_000);
    } finally {
      await rm(chain, { recursive: true, force: true });
    }
  });
});

describe("directoryKey", () => {
  it("tells apart inodes that differ only past 2^53 (overlayfs xino, CephFS, NFS 64-bit ids)", () => {
    const dev = 2049n;
    const ino = 2n ** 63n;
    // As numbers these are one: 2 ** 63 === 2 ** 63 + 1.
    expect(Number(ino)).toBe(Number(ino + 1n));
    expect(directoryKey({ dev, ino })).not.toBe(directoryKey({ dev, ino: ino + 1n }));
    expect(directoryKey({ dev, ino: 2n ** 64n - 1n })).toBe("2049:18446744073709551615");
    expect(directoryKey({ dev, ino })).not.toBe(directoryKey({ dev: dev + 1n, ino }));
  });
});
