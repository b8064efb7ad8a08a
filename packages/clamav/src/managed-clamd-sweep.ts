import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { type FileHandle, lstat, open, opendir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  managedConfigName,
  managedDirectoryPrefix,
  type OwnerRecord,
  ownerRecordName,
  parseOwnerRecord,
  provablyDead,
  recordScope,
  type StaleDirectoryFacts,
  staleVerdict,
} from "./managed-clamd-owner.js";
import {
  type PidScope,
  type ProcessIdentity,
  type ProcessProbe,
  probeProcess,
  processArguments,
  readPidScope,
} from "./process-identity.js";

/** A managed clamd directory removed because the process that made it is dead. */
export interface RemovedClamdDirectory {
  readonly directory: string;
  /** The dead owner's pid. */
  readonly ownerPid: number;
  /** The pid of the owner's clamd, killed first because it still ran; undefined when it did not. */
  readonly killedClamdPid: number | undefined;
}

/** What {@link removeStaleClamdDirectories} did. */
export interface StaleClamdSweep {
  /** The directories removed. */
  readonly removed: readonly RemovedClamdDirectory[];
  /**
   * Directories that stay, with why and what to do: of dead owners whose clamd could not be
   * stopped or verified, or that could not be removed; without an owner record for over an
   * hour; or not looked at when the time budget was spent.
   */
  readonly left: readonly { readonly directory: string; readonly reason: string }[];
}

/** Options of {@link removeStaleClamdDirectories}. */
export interface StaleClamdSweepOptions {
  /** Where the managed directories are. Default `tmpdir()`, where `startManagedClamd` makes them. */
  readonly parent?: string;
  /** How many of our `engine-clamd-*` directories to look at, at most. Default 64. */
  readonly maxDirectories?: number;
  /**
   * How long the whole sweep may take, in ms (default 3000): each read of `/proc` or of a
   * record and each wait for a killed clamd ends by then; the directories not looked at by
   * then are reported in `left`, for the next start.
   */
  readonly budgetMs?: number;
}

/** The default {@link StaleClamdSweepOptions.budgetMs}. */
export const defaultSweepBudgetMs = 3000;

const recordMaxBytes = 4096;
const orphanKillTimeoutMs = 5000;
/** A directory without an owner record is reported once this old (its maker died early?). */
const recordlessReportAfterMs = 60 * 60 * 1000;
/** A directory being removed (renamed) by another sweep, unless it stopped changing this long ago. */
const removingGraceMs = 10 * 60 * 1000;
const removingPrefix = `${managedDirectoryPrefix}removing-`;

type Left = { directory: string; reason: string };

/** What the sweep saw of a directory when it chose it: the identity its removal checks. */
interface Candidate {
  readonly directory: string;
  readonly stats: Stats;
}

/**
 * `work`, or `fallback` once `deadline` has passed first. The work itself is not cancelled
 * (a read of `/proc` blocked in the kernel keeps its libuv thread): only its wait is bounded.
 */
function within<T>(work: Promise<T>, deadline: number, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolveLate) => {
    timer = setTimeout(() => resolveLate(fallback), Math.max(0, deadline - Date.now()));
    timer.unref();
  });
  return Promise.race([work.catch(() => fallback), late]).finally(() => clearTimeout(timer));
}

/** Whether `stats` is a directory (not a link) of this process's user. */
const ownDirectory = (stats: Stats): boolean =>
  stats.isDirectory() && !stats.isSymbolicLink() && stats.uid === process.getuid?.();

/**
 * The first `max` directories named `engine-clamd-*` in `parent` that are ours: a directory
 * (not a link) of our uid, so that other users' directories cannot fill the count. Those
 * another sweep is removing right now (`engine-clamd-removing-*`, changed lately) are skipped.
 * `complete` is false when the budget ran out before the listing did.
 */
async function candidates(
  parent: string,
  max: number,
  deadline: number,
): Promise<{ found: Candidate[]; complete: boolean }> {
  const found: Candidate[] = [];
  try {
    for await (const entry of await opendir(parent)) {
      if (found.length >= max) break;
      if (Date.now() >= deadline) return { found, complete: false };
      if (!entry.name.startsWith(managedDirectoryPrefix) || !entry.isDirectory()) continue;
      const directory = join(parent, entry.name);
      const stats = await within(lstat(directory), deadline, undefined);
      if (!stats || !ownDirectory(stats)) continue;
      if (entry.name.startsWith(removingPrefix) && Date.now() - stats.mtimeMs < removingGraceMs) {
        continue;
      }
      found.push({ directory, stats });
    }
  } catch {
    // An unreadable parent has nothing we may remove.
  }
  return { found, complete: true };
}

/** The directory's owner record, when it holds a readable one (`missing`: no record file). */
async function readOwnerRecord(directory: string): Promise<OwnerRecord | "missing" | undefined> {
  let file: FileHandle;
  try {
    file = await open(join(directory, ownerRecordName), "r");
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? "missing" : undefined;
  }
  try {
    const buffer = Buffer.alloc(recordMaxBytes);
    const { bytesRead } = await file.read(buffer, 0, recordMaxBytes, 0);
    return bytesRead < recordMaxBytes
      ? parseOwnerRecord(buffer.subarray(0, bytesRead).toString("utf8"))
      : undefined;
  } catch {
    return undefined;
  } finally {
    await file.close().catch(() => {});
  }
}

const unknownProbe: ProcessProbe = { state: "running", startTime: undefined };

async function factsOf(
  directory: string,
  here: PidScope,
  deadline: number,
): Promise<StaleDirectoryFacts & { recordMissing: boolean }> {
  const read = await within(readOwnerRecord(directory), deadline, undefined);
  const record = read === "missing" ? undefined : read;
  const configArgument = `--config-file=${join(directory, managedConfigName)}`;
  const base = { here, record, configArgument, recordMissing: read === "missing" };
  // Pids of another boot or PID namespace are not probed: they name other processes here.
  if (!record || recordScope(record, here) !== "here") {
    return { ...base, owner: undefined, clamd: undefined, clamdArguments: undefined };
  }
  // A probe not answered in time is unknown: it proves nothing dead.
  const probe = (pid: number) => within(probeProcess(pid), deadline, unknownProbe);
  const owner = await probe(record.owner.pid);
  const clamd = record.clamd ? await probe(record.clamd.pid) : undefined;
  const clamdArguments =
    record.clamd && clamd?.state === "running"
      ? await within(processArguments(record.clamd.pid), deadline, undefined)
      : undefined;
  return { ...base, owner, clamd, clamdArguments };
}

/** Kills a dead owner's clamd and waits until it is gone; false when it is not, in time. */
async function killOrphan(clamd: ProcessIdentity, deadline: number): Promise<boolean> {
  if (clamd.pid === process.pid) return false;
  try {
    process.kill(clamd.pid, "SIGKILL");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") return false;
  }
  const end = Math.min(deadline, Date.now() + orphanKillTimeoutMs);
  while (Date.now() < end) {
    const probe = await within(probeProcess(clamd.pid), end, unknownProbe);
    if (provablyDead(clamd, probe)) return true;
    await new Promise((resolveWait) => setTimeout(resolveWait, 20));
  }
  return false;
}

/**
 * Removes the directory the sweep decided on, only if it is still the one it saw: renamed
 * first to a fresh private name beside it (`engine-clamd-removing-<random>`), so that its name
 * can no longer be swapped, then checked (a directory, not a link, same device, inode and uid
 * as `seen`), then removed. Something else under its name (removed by another sweep and made
 * again, by us or by another user where we are root) is renamed back and reported, never
 * removed. Undefined: gone already (another sweep removed it first).
 *
 * What remains: a process of our own uid changing what is inside the directory between the
 * check and the removal (the directory is 0700; `rm` does not follow links inside it).
 */
export async function removeVerified(
  directory: string,
  seen: Stats,
): Promise<"removed" | Left | undefined> {
  const renamed = join(dirname(directory), `${removingPrefix}${randomBytes(12).toString("hex")}`);
  try {
    await rename(directory, renamed);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return { directory, reason: `it cannot be renamed for removal (${(error as Error).message})` };
  }
  const now = await lstat(renamed).catch(() => undefined);
  const same =
    now?.isDirectory() === true &&
    !now.isSymbolicLink() &&
    now.dev === seen.dev &&
    now.ino === seen.ino &&
    now.uid === seen.uid;
  if (!same) {
    // Back under its name, unless that name is taken again (an empty directory there would be
    // replaced: rename(2) has no "no replace" in Node); else it stays under the new name.
    const back = await rename(renamed, directory).then(
      () => directory,
      () => renamed,
    );
    return {
      directory: back,
      reason: `${directory} changed while it was being removed (another directory under its name): left as it is`,
    };
  }
  try {
    await rm(renamed, { recursive: true, force: true });
  } catch (error) {
    return {
      directory: renamed,
      reason: `it cannot be removed (${(error as Error).message}): remove it by hand`,
    };
  }
  return "removed";
}

/** Decides on one directory and acts: removed, left (with why), or nothing (not stale). */
async function sweepOne(
  candidate: Candidate,
  here: PidScope,
  deadline: number,
): Promise<RemovedClamdDirectory | Left | undefined> {
  const { directory } = candidate;
  const facts = await factsOf(directory, here, deadline);
  const verdict = staleVerdict(facts);
  const ownerPid = facts.record?.owner.pid ?? 0;
  if (verdict.action === "keep") {
    if (
      verdict.reason === "no-record" &&
      facts.recordMissing &&
      Date.now() - candidate.stats.mtimeMs > recordlessReportAfterMs
    ) {
      return {
        directory,
        reason:
          "it has no owner record and has not changed for over an hour (its engine may have died before writing one): remove it by hand if no engine uses it",
      };
    }
    if (verdict.reason !== "clamd-unverified") return undefined;
    const clamdPid = facts.record?.clamd?.pid;
    return {
      directory,
      reason: `its owner (pid ${ownerPid}) is dead but its clamd (pid ${clamdPid}) may still run and cannot be verified: stop that clamd, then remove the directory`,
    };
  }
  if (verdict.killClamd && !(await killOrphan(verdict.killClamd, deadline))) {
    return {
      directory,
      reason: `its dead owner's clamd (pid ${verdict.killClamd.pid}) did not end on SIGKILL within ${orphanKillTimeoutMs} ms or the sweep's budget: check that process, then remove the directory`,
    };
  }
  const removal = await removeVerified(directory, candidate.stats);
  if (removal !== "removed") return removal;
  return { directory, ownerPid, killedClamdPid: verdict.killClamd?.pid };
}

/**
 * Removes the managed clamd directories (`engine-clamd-*` in `tmpdir()`) of processes that
 * ended without disposing their clamd, as `startManagedClamd` does before each start. A
 * directory goes only when its owner record proves its owner dead: recorded on another boot,
 * or, in this boot and this PID namespace, its pid gone or reused by a process with another
 * start time; a clamd of that owner that still runs, verified by pid, start time and its
 * config on the command line, is killed first. Directories without a readable owner record
 * (reported once over an hour old), of another user, of a live owner (another worker on the
 * same machine), or recorded in another PID namespace (another container sharing /tmp) or by
 * an earlier version that does not say which, are never touched. The whole sweep takes at most
 * `budgetMs`; what it did not look at is in `left`. Never throws.
 *
 * @example
 * const { removed } = await removeStaleClamdDirectories();
 * for (const entry of removed) console.warn(`removed ${entry.directory} (owner ${entry.ownerPid} dead)`);
 */
export async function removeStaleClamdDirectories(
  options: StaleClamdSweepOptions = {},
): Promise<StaleClamdSweep> {
  const removed: RemovedClamdDirectory[] = [];
  const left: Left[] = [];
  const budgetMs = options.budgetMs ?? defaultSweepBudgetMs;
  const deadline = Date.now() + budgetMs;
  const parent = options.parent ?? tmpdir();
  const notLookedAt = `not looked at: the sweep's time budget (${budgetMs} ms) was spent; the next start looks again`;
  const here = await within(readPidScope(), deadline, {
    pidNamespace: undefined,
    bootId: undefined,
  });
  const { found, complete } = await candidates(parent, options.maxDirectories ?? 64, deadline);
  for (const candidate of found) {
    if (Date.now() >= deadline) {
      left.push({ directory: candidate.directory, reason: notLookedAt });
      continue;
    }
    const outcome = await sweepOne(candidate, here, deadline).catch(() => undefined);
    if (outcome && "reason" in outcome) left.push(outcome);
    else if (outcome) removed.push(outcome);
  }
  if (!complete)
    left.push({ directory: join(parent, `${managedDirectoryPrefix}*`), reason: notLookedAt });
  return { removed, left };
}
