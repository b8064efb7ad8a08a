import { lstat, open, opendir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  managedConfigName,
  managedDirectoryPrefix,
  type OwnerRecord,
  ownerRecordName,
  parseOwnerRecord,
  provablyDead,
  type StaleDirectoryFacts,
  staleVerdict,
} from "./managed-clamd-owner.js";
import { type ProcessIdentity, probeProcess, processArguments } from "./process-identity.js";

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
  /** Directories of dead owners that stay, with why and what to do. */
  readonly left: readonly { readonly directory: string; readonly reason: string }[];
}

/** Options of {@link removeStaleClamdDirectories}. */
export interface StaleClamdSweepOptions {
  /** Where the managed directories are. Default `tmpdir()`, where `startManagedClamd` makes them. */
  readonly parent?: string;
  /** How many `engine-clamd-*` directories to look at, at most. Default 64. */
  readonly maxDirectories?: number;
}

const recordMaxBytes = 4096;
const orphanKillTimeoutMs = 5000;

/** The first `max` directories (not links) named `engine-clamd-*` in `parent`. */
async function candidates(parent: string, max: number): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of await opendir(parent)) {
      if (found.length >= max) break;
      if (entry.name.startsWith(managedDirectoryPrefix) && entry.isDirectory()) {
        found.push(join(parent, entry.name));
      }
    }
  } catch {
    // An unreadable parent has nothing we may remove.
  }
  return found;
}

/** The directory's owner record, when it is ours and holds a readable one. */
async function readOwnerRecord(directory: string): Promise<OwnerRecord | undefined> {
  try {
    const stats = await lstat(directory);
    if (!stats.isDirectory() || stats.uid !== process.getuid?.()) return undefined;
    const file = await open(join(directory, ownerRecordName), "r");
    try {
      const buffer = Buffer.alloc(recordMaxBytes);
      const { bytesRead } = await file.read(buffer, 0, recordMaxBytes, 0);
      return bytesRead < recordMaxBytes
        ? parseOwnerRecord(buffer.subarray(0, bytesRead).toString("utf8"))
        : undefined;
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
}

async function factsOf(directory: string): Promise<StaleDirectoryFacts> {
  const record = await readOwnerRecord(directory);
  const configArgument = `--config-file=${join(directory, managedConfigName)}`;
  const owner = record ? await probeProcess(record.owner.pid) : undefined;
  const clamd = record?.clamd ? await probeProcess(record.clamd.pid) : undefined;
  const clamdArguments =
    record?.clamd && clamd?.state === "running"
      ? await processArguments(record.clamd.pid)
      : undefined;
  return { record, owner, clamd, clamdArguments, configArgument };
}

/** Kills a dead owner's clamd and waits until it is gone; false when it is not, in time. */
async function killOrphan(clamd: ProcessIdentity): Promise<boolean> {
  if (clamd.pid === process.pid) return false;
  try {
    process.kill(clamd.pid, "SIGKILL");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ESRCH") return false;
  }
  const deadline = Date.now() + orphanKillTimeoutMs;
  while (Date.now() < deadline) {
    if (provablyDead(clamd, await probeProcess(clamd.pid))) return true;
    await new Promise((resolveWait) => setTimeout(resolveWait, 20));
  }
  return false;
}

/** Decides on one directory and acts: removed, left (with why), or nothing (not stale). */
async function sweepOne(
  directory: string,
): Promise<RemovedClamdDirectory | { directory: string; reason: string } | undefined> {
  const facts = await factsOf(directory);
  const verdict = staleVerdict(facts);
  const ownerPid = facts.record?.owner.pid ?? 0;
  if (verdict.action === "keep") {
    if (verdict.reason !== "clamd-unverified") return undefined;
    const clamdPid = facts.record?.clamd?.pid;
    return {
      directory,
      reason: `its owner (pid ${ownerPid}) is dead but its clamd (pid ${clamdPid}) may still run and cannot be verified: stop that clamd, then remove the directory`,
    };
  }
  if (verdict.killClamd && !(await killOrphan(verdict.killClamd))) {
    return {
      directory,
      reason: `its dead owner's clamd (pid ${verdict.killClamd.pid}) did not end on SIGKILL within ${orphanKillTimeoutMs} ms: check that process, then remove the directory`,
    };
  }
  try {
    await rm(directory, { recursive: true, force: true });
  } catch (error) {
    return {
      directory,
      reason: `it cannot be removed (${(error as Error).message}): remove it by hand`,
    };
  }
  return { directory, ownerPid, killedClamdPid: verdict.killClamd?.pid };
}

/**
 * Removes the managed clamd directories (`engine-clamd-*` in `tmpdir()`) of processes that
 * ended without disposing their clamd, as `startManagedClamd` does before each start. A
 * directory goes only when its owner record proves its owner dead (pid gone, or reused by a
 * process with another start time); a clamd of that owner that still runs, verified by pid,
 * start time and its config on the command line, is killed first. Directories without a
 * readable owner record, of another user, or of a live owner (another worker on the same
 * machine) are never touched. Never throws.
 *
 * @example
 * const { removed } = await removeStaleClamdDirectories();
 * for (const entry of removed) console.warn(`removed ${entry.directory} (owner ${entry.ownerPid} dead)`);
 */
export async function removeStaleClamdDirectories(
  options: StaleClamdSweepOptions = {},
): Promise<StaleClamdSweep> {
  const removed: RemovedClamdDirectory[] = [];
  const left: { directory: string; reason: string }[] = [];
  for (const directory of await candidates(
    options.parent ?? tmpdir(),
    options.maxDirectories ?? 64,
  )) {
    const outcome = await sweepOne(directory).catch(() => undefined);
    if (outcome && "reason" in outcome) left.push(outcome);
    else if (outcome) removed.push(outcome);
  }
  return { removed, left };
}
