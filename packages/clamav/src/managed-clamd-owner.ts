import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { ProcessIdentity, ProcessProbe } from "./process-identity.js";

/** The owner record's file name in a managed clamd's directory. */
export const ownerRecordName = "owner.json";

/** The name every managed clamd directory starts with, in `tmpdir()`. */
export const managedDirectoryPrefix = "engine-clamd-";

/** The clamd config's file name in a managed clamd's directory. */
export const managedConfigName = "clamd.conf";

// Never 0 or 1 (init), never negative (process groups): these are pids we may signal.
const identitySchema = z.strictObject({
  pid: z.number().int().min(2).max(4_194_304),
  startTime: z
    .string()
    .regex(/^\d{1,20}$/)
    .nullable(),
});

const ownerRecordSchema = z.strictObject({
  version: z.literal(1),
  owner: identitySchema,
  clamd: identitySchema.nullable(),
});

/**
 * What a managed clamd's directory says of who uses it: the Node process that made it (its
 * pid and start time) and the clamd it runs, once started.
 */
export interface OwnerRecord {
  readonly owner: ProcessIdentity;
  readonly clamd: ProcessIdentity | undefined;
}

/** The owner record in `text`, or undefined when it is not one (garbage, another version). */
export function parseOwnerRecord(text: string): OwnerRecord | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = ownerRecordSchema.safeParse(json);
  if (!parsed.success) return undefined;
  const identity = (value: { pid: number; startTime: string | null }): ProcessIdentity => ({
    pid: value.pid,
    startTime: value.startTime ?? undefined,
  });
  return {
    owner: identity(parsed.data.owner),
    clamd: parsed.data.clamd ? identity(parsed.data.clamd) : undefined,
  };
}

/** Writes the owner record into `directory`, whole or not at all (a rename over the old one). */
export async function writeOwnerRecord(directory: string, record: OwnerRecord): Promise<void> {
  const identity = (value: ProcessIdentity) => ({
    pid: value.pid,
    startTime: value.startTime ?? null,
  });
  const text = JSON.stringify({
    version: 1,
    owner: identity(record.owner),
    clamd: record.clamd ? identity(record.clamd) : null,
  });
  const path = join(directory, ownerRecordName);
  await writeFile(`${path}.next`, `${text}\n`, { mode: 0o600 });
  await rename(`${path}.next`, path);
}

/**
 * Whether the process `identity` names is provably not running: its pid is gone, or the pid
 * now belongs to a process with another start time. Unknown start times prove nothing.
 */
export function provablyDead(identity: ProcessIdentity, probe: ProcessProbe): boolean {
  if (probe.state === "gone") return true;
  return (
    identity.startTime !== undefined &&
    probe.startTime !== undefined &&
    probe.startTime !== identity.startTime
  );
}

/** What the sweep found of one directory: its record and its processes, probed. */
export interface StaleDirectoryFacts {
  readonly record: OwnerRecord | undefined;
  readonly owner: ProcessProbe | undefined;
  readonly clamd: ProcessProbe | undefined;
  /** The recorded clamd's arguments (`/proc/<pid>/cmdline`), when it runs. */
  readonly clamdArguments: readonly string[] | undefined;
  /** The `--config-file=` argument a clamd of this directory runs with. */
  readonly configArgument: string;
}

/**
 * Keep the directory (no readable owner record, its owner alive, or its owner dead but its
 * clamd unverifiable), or remove it, killing its dead owner's verified clamd first.
 */
export type StaleVerdict =
  | { readonly action: "keep"; readonly reason: "no-record" | "owner-alive" | "clamd-unverified" }
  | { readonly action: "remove"; readonly killClamd: ProcessIdentity | undefined };

/**
 * Decides on one directory from its facts. It is removed only when its owner is provably
 * dead, and then only when its clamd is provably dead too, or is verified to be that
 * directory's clamd (same pid, same start time, its config on the command line) and is to be
 * killed first. Anything unproven keeps the directory.
 */
export function staleVerdict(facts: StaleDirectoryFacts): StaleVerdict {
  const { record } = facts;
  if (!record || !facts.owner) return { action: "keep", reason: "no-record" };
  if (!provablyDead(record.owner, facts.owner)) return { action: "keep", reason: "owner-alive" };
  if (!record.clamd) return { action: "remove", killClamd: undefined };
  if (!facts.clamd) return { action: "keep", reason: "clamd-unverified" };
  if (provablyDead(record.clamd, facts.clamd)) return { action: "remove", killClamd: undefined };
  const verified =
    record.clamd.startTime !== undefined &&
    facts.clamd.state === "running" &&
    facts.clamd.startTime === record.clamd.startTime &&
    facts.clamdArguments?.includes(facts.configArgument) === true;
  return verified
    ? { action: "remove", killClamd: record.clamd }
    : { action: "keep", reason: "clamd-unverified" };
}
