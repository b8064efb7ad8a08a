import { type ChildProcess, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClamdClient } from "../src/clamd-client.js";
import { startManagedClamd, startManagedClamdWith } from "../src/managed-clamd.js";
import { parentDeathGuard } from "../src/managed-clamd-lifetime.js";
import { writeOwnerRecord } from "../src/managed-clamd-owner.js";
import { identityOf, type ProcessIdentity, readPidScope } from "../src/process-identity.js";
import {
  bundleChild,
  childrenNaming,
  clamdPath,
  endsWithin,
  orphanedClamd,
  processInfo,
  startOwnerChild,
} from "./lifetime-helpers.js";

// Every managed directory of this file lives in its own TMPDIR (os.tmpdir() reads it on each
// call): other test files' starts sweep the real one, and this file's sweeps touch only its own.
// Another PID namespace sharing this /tmp, as a second container of a pod does (root only).
const inNewPidNamespace = [
  "unshare",
  "--pid",
  "--fork",
  "--kill-child",
  "--mount-proc",
  "/bin/sh",
  "-c",
  // Node is pid 2 there, not 1 (a record never names pid 1): sh stays as the namespace's init.
  '"$@"; exit $?',
  "sh",
];
const pidNamespacesWork =
  spawnSync(inNewPidNamespace[0] as string, [...inNewPidNamespace.slice(1), "true"]).status === 0;

let sandbox: string;
let bundle: string;
const previousTmpdir = process.env.TMPDIR;
const children: ChildProcess[] = [];
const orphans: ProcessIdentity[] = [];

beforeAll(async () => {
  sandbox = await mkdtemp(join(tmpdir(), "engine-lifetime-"));
  bundle = await bundleChild(sandbox);
  process.env.TMPDIR = sandbox;
});
afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  // An orphan a failed test left: killed only while its pid is still that clamd.
  for (const orphan of orphans.splice(0)) {
    const now = await identityOf(orphan.pid);
    if (now.startTime === orphan.startTime) process.kill(orphan.pid, "SIGKILL");
  }
});
afterAll(async () => {
  if (previousTmpdir === undefined) delete process.env.TMPDIR;
  else process.env.TMPDIR = previousTmpdir;
  await rm(sandbox, { recursive: true, force: true });
});

describe("a managed clamd never outlives the process that started it", () => {
  it("uses setpriv --pdeathsig on this machine (setpriv is installed)", async () => {
    const guard = await parentDeathGuard(clamdPath);
    if (existsSync("/usr/bin/setpriv")) expect(guard.kind).toBe("setpriv");
  });

  it.each(["auto", "watchdog"] as const)(
    "(%s) ends within seconds of a SIGKILL of its Node process; the next start removes its directory",
    async (mode) => {
      const owner = await startOwnerChild(bundle, mode, sandbox);
      children.push(owner.child);
      // The reported pid is clamd's own, a child of the Node process (no wrapper between).
      expect(await processInfo(owner.clamdPid)).toEqual({
        name: "clamd",
        parent: owner.child.pid,
      });
      const clamd = await identityOf(owner.clamdPid);
      owner.child.kill("SIGKILL");
      expect(await endsWithin(clamd, 10_000)).toBe(true);
      expect(existsSync(owner.directory)).toBe(true); // nothing disposed it

      await using next = await startManagedClamd({ tcp: false });
      expect(next.staleSweep.removed).toContainEqual({
        directory: owner.directory,
        ownerPid: owner.child.pid,
        killedClamdPid: undefined,
      });
      expect(existsSync(owner.directory)).toBe(false);
      expect(existsSync(next.directory)).toBe(true);
    },
    60_000,
  );

  it.each([
    ["auto", undefined],
    ["watchdog", { kind: "watchdog" } as const],
  ])(
    "(%s) still stops gracefully on dispose, and kill() reaches clamd",
    async (_mode, guard) => {
      const clamd = await startManagedClamdWith({ tcp: false }, guard);
      const pid = clamd.pid as number;
      expect(await processInfo(pid)).toEqual({ name: "clamd", parent: process.pid });
      const watchdogs = await childrenNaming(process.pid, "engine-clamd-watchdog");
      expect(watchdogs.length).toBe(guard ? 1 : 0);
      await clamd.stop();
      // SIGTERM: clamd's own orderly shutdown, logged.
      expect(await clamd.log()).toMatch(/--- Stopped at/);
      // The watchdog goes with its clamd (it must not signal a reused pid later).
      for (const watchdog of watchdogs) {
        expect(await endsWithin(await identityOf(watchdog), 10_000)).toBe(true);
      }
      await clamd.restart();
      const restarted = await identityOf(clamd.pid);
      await clamd.kill("SIGKILL");
      expect(await endsWithin(restarted, 5_000)).toBe(true);
      await clamd[Symbol.asyncDispose]();
      expect(existsSync(clamd.directory)).toBe(false);
    },
    60_000,
  );
});

describe("the sweep of dead engines' directories at start", () => {
  it("a start that fails (unreadable database directory) leaves no directory behind", async () => {
    const before = await readdir(sandbox);
    await expect(
      startManagedClamd({ tcp: false, databaseDirectories: [join(sandbox, "missing")] }),
    ).rejects.toThrow(/cannot be read/);
    expect(await readdir(sandbox)).toEqual(before);
  });

  it("kills a dead owner's orphaned clamd (pid, start time and config verified), then removes its directory", async () => {
    const orphan = await orphanedClamd(sandbox);
    orphans.push(orphan.clamd);
    expect(await processInfo(orphan.clamd.pid)).toMatchObject({ name: "clamd" });

    await using next = await startManagedClamd({ tcp: false });
    expect(next.staleSweep.removed).toContainEqual({
      directory: orphan.directory,
      ownerPid: orphan.owner.pid,
      killedClamdPid: orphan.clamd.pid,
    });
    expect(await endsWithin(orphan.clamd, 5_000)).toBe(true);
    expect(existsSync(orphan.directory)).toBe(false);
  }, 60_000);

  it.skipIf(!pidNamespacesWork)(
    "leaves alone the live directory of an engine in another PID namespace sharing this /tmp",
    async () => {
      const other = await startOwnerChild(bundle, "auto", sandbox, inNewPidNamespace);
      children.push(other.child);
      // Its pids (owner 2, its clamd) name other processes here, or none.
      const record = JSON.parse(await readFile(join(other.directory, "owner.json"), "utf8"));
      expect(record.owner.pid).toBe(2);
      expect(record.scope.pidNamespace).not.toBe((await readPidScope()).pidNamespace);

      await using next = await startManagedClamd({ tcp: false });
      expect(next.staleSweep.removed.map((entry) => entry.directory)).not.toContain(
        other.directory,
      );
      expect(existsSync(other.directory)).toBe(true);
      await using client = new ClamdClient({ socket: join(other.directory, "clamd.sock") });
      await client.ping();
    },
    60_000,
  );

  it("leaves alone the directories of live owners (this process, another worker) and those without a record", async () => {
    const ours = await mkdtemp(join(sandbox, "engine-clamd-"));
    await writeOwnerRecord(ours, {
      owner: await identityOf(),
      clamd: undefined,
      scope: await readPidScope(),
    });
    const unowned = await mkdtemp(join(sandbox, "engine-clamd-"));
    await writeFile(join(unowned, "clamd.conf"), "Foreground yes\n");
    const garbage = await mkdtemp(join(sandbox, "engine-clamd-"));
    await writeFile(join(garbage, "owner.json"), '{"version":1,"owner":{"pid":-1}}');
    const worker = await startOwnerChild(bundle, "auto", sandbox);
    children.push(worker.child);
    const workerClamd = await identityOf(worker.clamdPid);
    await using first = await startManagedClamd({ tcp: false });

    await using second = await startManagedClamd({ tcp: false });
    const kept = [ours, unowned, garbage, worker.directory, first.directory];
    for (const directory of kept) expect(existsSync(directory)).toBe(true);
    expect(second.staleSweep.removed.filter((entry) => kept.includes(entry.directory))).toEqual([]);
    expect(await identityOf(worker.clamdPid)).toEqual(workerClamd);
    // Both clamds still answer.
    for (const socket of [
      first.clientOptions(),
      { socket: join(worker.directory, "clamd.sock") },
    ]) {
      await using client = new ClamdClient(socket);
      await client.ping();
    }
  }, 60_000);
});
