import { spawn } from "node:child_process";
import {
  chown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
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
import { removeStaleClamdDirectories, removeVerified } from "../src/managed-clamd-sweep.js";
import {
  identityOf,
  type PidScope,
  parseProcStat,
  probeProcess,
  readPidScope,
} from "../src/process-identity.js";

const here: PidScope = {
  pidNamespace: "pid:[4026531836]",
  bootId: "f7fba6a4-158c-470d-8e40-ece93951c0cf",
};
const otherBoot = "00000000-1111-2222-3333-444444444444";
const record = (clamd: OwnerRecord["clamd"], scope: PidScope = here): OwnerRecord => ({
  owner: { pid: 4242, startTime: "1000" },
  clamd,
  scope,
});
const clamd = { pid: 4343, startTime: "2000" };
const configArgument = "--config-file=/tmp/engine-clamd-x/clamd.conf";
const facts = (overrides: Partial<StaleDirectoryFacts>): StaleDirectoryFacts => ({
  here,
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
        record(clamd, { pidNamespace: undefined, bootId: undefined }),
        { ...record(clamd), scope: undefined },
        { owner: { pid: 77, startTime: undefined }, clamd: undefined, scope: undefined },
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
    [
      "a namespace not pid:[n]",
      '{"version":1,"owner":{"pid":42,"startTime":"1"},"clamd":null,"scope":{"pidNamespace":"x","bootId":null}}',
    ],
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

describe("probeProcess", () => {
  const failing = (code: string) => () => Promise.reject(Object.assign(new Error(code), { code }));
  it("reads a failure of /proc/<pid>/stat other than ENOENT as unknown, never gone", async () => {
    for (const code of ["EMFILE", "ENFILE", "ENOMEM", "EAGAIN", "EACCES", "EIO"]) {
      expect(await probeProcess(process.pid, failing(code))).toEqual({
        state: "running",
        startTime: undefined,
      });
    }
  });
  it("reads ENOENT and ESRCH as gone", async () => {
    for (const code of ["ENOENT", "ESRCH"]) {
      expect(await probeProcess(process.pid, failing(code))).toEqual({ state: "gone" });
    }
  });
  it("reads this process's PID namespace and boot", async () => {
    const scope = await readPidScope();
    expect(scope.pidNamespace).toMatch(/^pid:\[\d+\]$/);
    expect(scope.bootId).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("staleVerdict", () => {
  it("removes, killing nothing, a record from another boot, even where its pids run here", () => {
    const verdict = staleVerdict(
      facts({
        record: record(clamd, { ...here, bootId: otherBoot }),
        owner: running("1000"),
        clamd: running("2000"),
        clamdArguments: ["/usr/sbin/clamd", configArgument],
      }),
    );
    expect(verdict).toEqual({ action: "remove", killClamd: undefined });
  });
  it("keeps a record from another PID namespace, one that cannot be read, or an old one that does not say", () => {
    const elsewhere = [
      record(clamd, { ...here, pidNamespace: "pid:[4026532999]" }),
      record(clamd, { ...here, pidNamespace: undefined }),
      { ...record(clamd), scope: undefined },
    ];
    for (const each of elsewhere) {
      // Its pids are gone here: in its own namespace they may well run.
      expect(staleVerdict(facts({ record: each }))).toEqual({
        action: "keep",
        reason: "elsewhere",
      });
    }
    // Ours unreadable: nothing is comparable.
    const unreadable = { pidNamespace: undefined, bootId: here.bootId };
    expect(staleVerdict(facts({ here: unreadable })).action).toBe("keep");
  });
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
  let scope: PidScope;
  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), "engine-sweep-unit-"));
    scope = await readPidScope();
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
    const goneOwner = await managedDirectory("gone", { owner: dead, clamd: dead, scope });
    const reusedPid = await managedDirectory("reused", {
      owner: { pid: process.pid, startTime: `${Number(self.startTime) + 1}` },
      clamd: undefined,
      scope,
    });
    const alive = await managedDirectory("alive", { owner: self, clamd: undefined, scope });
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
      await managedDirectory(name, { owner: dead, clamd: undefined, scope });
    }
    const sweep = await removeStaleClamdDirectories({ parent, maxDirectories: 3 });
    expect(sweep.removed).toHaveLength(3);
    expect(await readdir(parent)).toHaveLength(1);
  });

  it("keeps another PID namespace's records and old records, removes another boot's", async () => {
    const dead = await deadIdentity();
    const self = await identityOf();
    const otherNamespace = await managedDirectory("ns", {
      owner: dead,
      clamd: undefined,
      scope: { ...scope, pidNamespace: "pid:[4026532999]" },
    });
    const unreadableNamespace = await managedDirectory("nsunknown", {
      owner: dead,
      clamd: undefined,
      scope: { ...scope, pidNamespace: undefined },
    });
    const old = await managedDirectory("old", { owner: dead, clamd: undefined, scope: undefined });
    // Another boot: its owner's pid (ours, start time included) is not that process.
    const previousBoot = await managedDirectory("boot", {
      owner: self,
      clamd: self,
      scope: { ...scope, bootId: otherBoot },
    });
    const sweep = await removeStaleClamdDirectories({ parent });
    expect(sweep.removed).toEqual([
      { directory: previousBoot, ownerPid: process.pid, killedClamdPid: undefined },
    ]);
    expect(sweep.left).toEqual([]);
    expect((await readdir(parent)).sort()).toEqual(
      [otherNamespace, unreadableNamespace, old]
        .map((path) => path.slice(parent.length + 1))
        .sort(),
    );
  });

  it.skipIf(process.getuid?.() !== 0)(
    "does not count other users' directories toward maxDirectories",
    async () => {
      const dead = await deadIdentity();
      for (const name of ["o1", "o2", "o3", "o4", "o5", "o6"]) {
        const directory = await managedDirectory(name, { owner: dead, clamd: undefined, scope });
        await chown(directory, 65534, 65534);
      }
      const ours = await managedDirectory("ours", { owner: dead, clamd: undefined, scope });
      const sweep = await removeStaleClamdDirectories({ parent, maxDirectories: 2 });
      expect(sweep.removed.map((entry) => entry.directory)).toEqual([ours]);
      expect(await readdir(parent)).toHaveLength(6);
    },
  );

  it("stops when its time budget is spent and reports what it did not look at", async () => {
    const dead = await deadIdentity();
    const directories: string[] = [];
    for (const name of ["a", "b", "c"]) {
      directories.push(await managedDirectory(name, { owner: dead, clamd: undefined, scope }));
    }
    const sweep = await removeStaleClamdDirectories({ parent, budgetMs: 0 });
    expect(sweep.removed).toEqual([]);
    // Spent before the listing: what it did not look at is named by its pattern.
    expect(sweep.left).toEqual([
      {
        directory: join(parent, "engine-clamd-*"),
        reason: expect.stringMatching(/not looked at.*budget \(0 ms\)/),
      },
    ]);
    expect((await readdir(parent)).sort()).toEqual(
      directories.map((path) => path.slice(parent.length + 1)).sort(),
    );
  });

  it("reports, and keeps, a directory without a record once it is over an hour old", async () => {
    const fresh = await managedDirectory("fresh", undefined);
    const stale = await managedDirectory("stale", undefined);
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(stale, twoHoursAgo, twoHoursAgo);
    const sweep = await removeStaleClamdDirectories({ parent });
    expect(sweep.removed).toEqual([]);
    expect(sweep.left).toEqual([
      { directory: stale, reason: expect.stringMatching(/no owner record/) },
    ]);
    expect((await readdir(parent)).sort()).toEqual(
      [fresh, stale].map((path) => path.slice(parent.length + 1)).sort(),
    );
  });

  it("removes only the directory it saw: another one made under its name since is left", async () => {
    const directory = await managedDirectory("swapped", undefined);
    const seen = await lstat(directory);
    // The one it saw goes away (kept aside here, so that its inode is not reused) and
    // another directory takes its name.
    await rename(directory, join(parent, "aside"));
    await mkdir(directory);
    await writeFile(join(directory, "someone-elses"), "keep me");
    const outcome = await removeVerified(directory, seen);
    expect(outcome).toEqual({ directory, reason: expect.stringMatching(/changed while/) });
    expect(await readFile(join(directory, "someone-elses"), "utf8")).toBe("keep me");
    expect((await readdir(parent)).sort()).toEqual(["aside", "engine-clamd-swapped"]);
    // The one it saw, unchanged, goes.
    expect(await removeVerified(directory, await lstat(directory))).toBe("removed");
    expect(await readdir(parent)).toEqual(["aside"]);
  });

  it("two sweeps at once remove each dead owner's directory once, and report it once", async () => {
    const dead = await deadIdentity();
    const directories: string[] = [];
    for (let index = 0; index < 12; index += 1) {
      directories.push(
        await managedDirectory(`race${index}`, { owner: dead, clamd: undefined, scope }),
      );
    }
    const sweeps = await Promise.all([
      removeStaleClamdDirectories({ parent }),
      removeStaleClamdDirectories({ parent }),
    ]);
    const removed = sweeps.flatMap((sweep) => sweep.removed.map((entry) => entry.directory));
    expect(removed.sort()).toEqual(directories.sort());
    expect(sweeps.flatMap((sweep) => sweep.left)).toEqual([]);
    expect(await readdir(parent)).toEqual([]);
  });
});
