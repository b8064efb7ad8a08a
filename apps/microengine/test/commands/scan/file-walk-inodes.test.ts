import type { BigIntStats, Stats } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { walkPathsSync } from "../../../src/commands/scan/file-walk.js";

// Two directories whose inode numbers differ only past 2^53, as overlayfs with xino, CephFS or
// NFS (Isilon) 64-bit file ids give: the file system is real, the inode numbers of the
// directories named `big-1` and `big-2` are made so, in bigint stats exactly, in number stats
// rounded as Node rounds them (both 2 ** 63).
const bigInodes: Record<string, bigint> = { "big-1": 2n ** 63n, "big-2": 2n ** 63n + 1n };

function withBigInode<T extends Stats | BigIntStats>(path: string, info: T): T {
  const ino = bigInodes[basename(path)];
  if (ino === undefined) return info;
  const copy = Object.assign(Object.create(Object.getPrototypeOf(info)), info);
  copy.ino = typeof info.ino === "bigint" ? ino : Number(ino);
  return copy;
}

// The walk runs here, in this thread (walkPathsSync, not the worker walkPaths starts), so that
// its stats are these.
vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const wrap = (call: typeof actual.statSync) => (path: string, options?: { bigint?: boolean }) =>
    withBigInode(path, call(path, options) as Stats | BigIntStats);
  return { ...actual, statSync: wrap(actual.statSync), lstatSync: wrap(actual.lstatSync) };
});

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "engine-walk-inodes-"));
  for (const name of ["big-1", "big-2"]) {
    await mkdir(join(root, name));
    await writeFile(join(root, name, `in-${name}.txt`), name);
  }
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("walkPathsSync with 64-bit inode numbers", () => {
  it("walks two directories whose inodes differ only past 2^53", () => {
    const entries: string[] = [];
    for (const entry of walkPathsSync([root]))
      entries.push(`${entry.kind} ${entry.path.replace(root, "")}`);
    expect(entries).toEqual(["file /big-1/in-big-1.txt", "file /big-2/in-big-2.txt"]);
  });
});
