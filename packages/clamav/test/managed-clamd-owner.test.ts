import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type OwnerRecord,
  parseOwnerRecord,
  type StaleDirectoryFacts,
  staleVerdict,
  writeOwnerRecord,
} from "../src/managed-clamd-owner.js";
import { removeStaleClamdDirectories } from "../src/managed-clamd-sweep.js";
import { identityOf, parseProcStat, probeProcess } from "../src/process-identity.js";

const record = (clamd: OwnerRecord["clamd"]): OwnerRecord => ({
  owner: { pid: 4242, startTime: "1000" },
  clamd,
});
const clamd = { pid: 4343, startTime: "2000" };
const configArgument = "--config-file=/tmp/engine-clamd-x/clamd.conf";
const facts = (overrides: Partial<StaleDirectoryFacts>): StaleDirectoryFacts => ({
  record: record(clamd),
  owner: { state: "gone" },
  clamd: { state: "gone" },
  clamdArguments: undefined,
  configArgument,
  ...overrides,
});
const running = (startTime: string | undefined) => ({ state: "running" as const, startTime });

describe("parseOwnerRecord", () => {
  it("reads what writeOwnerRecord writes, start times unknown included", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-owner-unit-"));
    try {
      for (const written of [
        record(clamd),
        record(undefined),
        { owner: { pid: 77, startTime: undefined }, clamd: undefined },
      ]) {
        await writeOwnerRecord(directory, written);
        expect(parseOwnerRecord(await readFile(join(directory, "owner.json"), "utf8"))).toEqual(
          written,
        );
      }
      // The record is replaced whole (rename), nothing else is left beside it.
      expect(await readdir(directory)).toEqual(["owner.json"]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it.each([
    ["not JSON", "owner 4242"],
    ["truncated JSON", '{"version":1,"owner":{"pid":42'],
    ["an array", "[1,2]"],
    ["another version", '{"version":2,"owner":{"pid":42,"startTime":"1"},"clamd":null}'],
    ["no owner", '{"version":1,"clamd":null}'],
    ["pid 1 (init)", '{"version":1,"owner":{"pid":1,"startTime":"1"},"clamd":null}'],
    ["pid 0", '{"version":1,"owner":{"pid":0,"startTime":"1"},"clamd":null}'],
    ["a negative pid", '{"version":1,"owner":{"pid":-5,"startTime":"1"},"clamd":null}'],
    ["a fractional pid", '{"version":1,"owner":{"pid":4.5,"startTime":"1"},"clamd":null}'],
    ["a pid as text", '{"version":1,"owner":{"pid":"42","startTime":"1"},"clamd":null}'],
    ["a start time not digits", '{"version":1,"owner":{"pid":42,"startTime":"1e3"},"clamd":null}'],
    [
      "a clamd pid of -1",
      '{"version":1,"owner":{"pid":42,"startTime":"1"},"clamd":{"pid":-1,"startTime":"1"}}',
    ],
    ["an unknown key", '{"version":1,"owner":{"pid":42,"startTime":"1"},"clamd":null,"x":1}'],
  ])("refuses %s", (_name, text) => {
    expect(parseOwnerRecord(text)).toBeUndefined();
  });
});

describe("parseProcStat", () => {
  const tail = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 987654 20 21";
  it("reads the state and field 22 after the command name, whatever it holds", () => {
    expect(parseProcStat(`123 (clamd) ${tail}`)).toEqual({ state: "S", startTime: "987654" });
    expect(parseProcStat(`123 (a) b (c)) ${tail}`)).toEqual({ state: "S", startTime: "987654" });
  });
  it("refuses a line without a name or cut short", () => {
    expect(parseProcStat(`123 clamd ${tail}`)).toBeUndefined();
    expect(parseProcStat("123 (clamd) S 1 2 3")).toBeUndefined();
    expect(parseProcStat("")).toBeUndefined();
  });
  it("reads this process's own line", async () => {
    const identity = await identityOf();
    expect(identity.pid).toBe(process.pid);
    expect(identity.startTime).toMatch(/^\d+$/);
  });
});

describe("staleVerdict", () => {
  it("keeps a directory without a readable owner record", () => {
    expect(staleVerdict(facts({ record: undefined, owner: undefined }))).toEqual({
      action: "keep",
      reason: "no-record",
    });
  });
  it("keeps a directory whose owner runs with its recorded start time", () => {
    expect(staleVerdict(facts({ owner: running("1000") }))).toEqual({
      action: "keep",
      reason: "owner-alive",
    });
  });
  it("keeps a directory whose owner pid runs with an unknown start time (no proof)", () => {
    expect(staleVerdict(facts({ owner: running(undefined) })).action).toBe("keep");
    const unknownRecorded = { ...record(clamd), owner: { pid: 4242, startTime: undefined } };
    expect(staleVerdict(facts({ record: unknownRecorded, owner: running("9") })).action).toBe(
      "keep",
    );
  });
  it("removes when the owner pid is gone and its clamd too", () => {
    expect(staleVerdict(facts({}))).toEqual({ action: "remove", killClamd: undefined });
  });
  it("removes when the owner pid was reused by a process with another start time", () => {
    expect(staleVerdict(facts({ owner: running("1001") }))).toEqual({
      action: "remove",
      killClamd: undefined,
    });
  });
  it("removes a dead owner's directory that never had a clamd", () => {
    expect(staleVerdict(facts({ record: record(undefined), clamd: undefined }))).toEqual({
      action: "remove",
      killClamd: undefined,
    });
  });
  it("removes without killing when the clamd pid now belongs to another process", () => {
    const verdict = staleVerdict(
      facts({ clamd: running("2001"), clamdArguments: ["/usr/sbin/clamd", configArgument] }),
    );
    expect(verdict).toEqual({ action: "remove", killClamd: undefined });
  });
  it("kills a dead owner's clamd first when pid, start time and config all match", () => {
    const verdict = staleVerdict(
      facts({ clamd: running("2000"), clamdArguments: ["/usr/sbin/clamd", configArgument] }),
    );
    expect(verdict).toEqual({ action: "remove", killClamd: clamd });
  });
  it("keeps the directory when the running clamd cannot be verified", () => {
    const unverified = [
      facts({ clamd: running("2000"), clamdArguments: ["/usr/sbin/clamd", "--config-file=/x"] }),
      facts({ clamd: running("2000"), clamdArguments: undefined }),
      facts({ clamd: running(undefined), clamdArguments: ["clamd", configArgument] }),
      facts({ clamd: undefined }),
    ];
    for (const each of unverified) {
      expect(staleVerdict(each)).toEqual({ action: "keep", reason: "clamd-unverified" });
    }
  });
});

describe("removeStaleClamdDirectories (no clamd: records and real pids only)", () => {
  let parent: string;
  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), "engine-sweep-unit-"));
  });
  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });
  const managedDirectory = async (name: string, owned: OwnerRecord | string | undefined) => {
    const directory = join(parent, `engine-clamd-${name}`);
    await mkdir(directory);
    if (typeof owned === "string") await writeFile(join(directory, "owner.json"), owned);
    else if (owned) await writeOwnerRecord(directory, owned);
    return directory;
  };
  /** The identity of a process that has exited (and been reaped). */
  const deadIdentity = async () => {
    const child = spawn("sleep", ["30"], { stdio: "ignore" });
    const identity = await identityOf(child.pid);
    await new Promise((resolveExit) => child.once("exit", resolveExit).kill("SIGKILL"));
    expect(await probeProcess(identity.pid)).toEqual({ state: "gone" });
    return identity;
  };

  it("removes dead owners' directories and leaves live, unowned, garbage and linked ones", async () => {
    const self = await identityOf();
    const dead = await deadIdentity();
    const goneOwner = await managedDirectory("gone", { owner: dead, clamd: dead });
    const reusedPid = await managedDirectory("reused", {
      owner: { pid: process.pid, startTime: `${Number(self.startTime) + 1}` },
      clamd: undefined,
    });
    const alive = await managedDirectory("alive", { owner: self, clamd: undefined });
    const unowned = await managedDirectory("unowned", undefined);
    const garbage = await managedDirectory("garbage", "\u0000not a record");
    await symlink(goneOwner, join(parent, "engine-clamd-link"));
    await mkdir(join(parent, "other-dead"));

    const sweep = await removeStaleClamdDirectories({ parent });
    expect(sweep.removed.map((entry) => entry.directory).sort()).toEqual(
      [goneOwner, reusedPid].sort(),
    );
    expect(sweep.removed.every((entry) => entry.killedClamdPid === undefined)).toBe(true);
    expect(sweep.left).toEqual([]);
    expect((await readdir(parent)).sort()).toEqual(
      [alive, unowned, garbage, join(parent, "engine-clamd-link"), join(parent, "other-dead")]
        .map((path) => path.slice(parent.length + 1))
        .sort(),
    );
  });

  it("looks at no more directories than maxDirectories", async () => {
    const dead = await deadIdentity();
    for (const name of ["a", "b", "c", "d"]) {
      await managedDirectory(name, { owner: dead, clamd: undefined });
    }
    const sweep = await removeStaleClamdDirectories({ parent, maxDirectories: 3 });
    expect(sweep.removed).toHaveLength(3);
    expect(await readdir(parent)).toHaveLength(1);
  });
});
