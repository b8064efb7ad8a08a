import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import type { PidScope, ProcessIdentity, ProcessProbe } from "./process-identity.js";

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

const scopeSchema = z.strictObject({
  pidNamespace: z
    .string()
    .regex(/^(pid:\[\d{1,20}\]|none:[a-z0-9]{1,20})$/)
    .nullable(),
  bootId: z
    .string()
    .regex(/^[0-9a-f-]{36}$/)
    .nullable(),
});

// `scope` is absent from the records of earlier versions: those are never swept.
const ownerRecordSchema = z.strictObject({
  version: z.literal(1),
  owner: identitySchema,
  clamd: identitySchema.nullable(),
  scope: scopeSchema.optional(),
});

/**
 * What a managed clamd's directory says of who uses it: the Node process that made it (its
 * pid and start time), the clamd it runs, once started, and what those pids are relative to
 * (the owner's PID namespace and boot; undefined in the records of earlier versions).
 */
export interface OwnerRecord {
  readonly owner: ProcessIdentity;
  readonly clamd: ProcessIdentity | undefined;
  readonly scope: PidScope | undefined;
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
  const scope = parsed.data.scope;
  return {
    owner: identity(parsed.data.owner),
    clamd: parsed.data.clamd ? identity(parsed.data.clamd) : undefined,
    scope: scope && {
      pidNamespace: scope.pidNamespace ?? undefined,
      bootId: scope.bootId ?? undefined,
    },
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
    ...(record.scope && {
      scope: {
        pidNamespace: record.scope.pidNamespace ?? null,
        bootId: record.scope.bootId ?? null,
      },
    }),
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

/**
 * Where a record's pids were read, seen from `here`: on another boot (all its processes ended
 * with it), here (same boot, same PID namespace: its pids can be probed), or elsewhere (another
 * PID namespace, one that cannot be read on either side, or a record of an earlier version
 * that does not say): its pids mean nothing here and prove nothing.
 */
export function recordScope(
  record: OwnerRecord,
  here: PidScope,
): "other-boot" | "here" | "elsewhere" {
  const scope = record.scope;
  if (!scope) return "elsewhere";
  if (scope.bootId !== undefined && here.bootId !== undefined && scope.bootId !== here.bootId) {
    return "other-boot";
  }
  return scope.pidNamespace !== undefined && scope.pidNamespace === here.pidNamespace
    ? "here"
    : "elsewhere";
}

/** What the sweep found of one directory: its record and its processes, probed. */
export interface StaleDirectoryFacts {
  /** This process's PID namespace and boot. */
  readonly here: PidScope;
  readonly record: OwnerRecord | undefined;
  readonly owner: ProcessProbe | undefined;
  readonly clamd: ProcessProbe | undefined;
  /** The recorded clamd's arguments (`/proc/<pid>/cmdline`), when it runs. */
  readonly clamdArguments: readonly string[] | undefined;
  /** The `--config-file=` argument a clamd of this directory runs with. */
  readonly configArgument: string;
}

/**
 * Keep the directory (no readable owner record, a record from another PID namespace or one
 * that does not say, its owner alive, or its owner dead but its clamd unverifiable), or remove
 * it, killing its dead owner's verified clamd first.
 */
export type StaleVerdict =
  | {
      readonly action: "keep";
      readonly reason: "no-record" | "elsewhere" | "owner-alive" | "clamd-unverified";
    }
  | { readonly action: "remove"; readonly killClamd: ProcessIdentity | undefined };

/**
 * Decides on one directory from its facts. A record from another boot is removed (nothing
 * killed: its processes ended with that boot); one from another PID namespace, or that does
 * not say which, is kept (its pids name other processes here). Otherwise it is removed only
 * when its owner is provably dead, and then only when its clamd is provably dead too, or is
 * verified to be that directory's clamd (same pid, same start time, its config on the command
 * line) and is to be killed first. Anything unproven keeps the directory.
 */
export function staleVerdict(facts: StaleDirectoryFacts): StaleVerdict {
  const { record } = facts;
  if (!record) return { action: "keep", reason: "no-record" };
  const scope = recordScope(record, facts.here);
  if (scope === "other-boot") return { action: "remove", killClamd: undefined };
  if (scope === "elsewhere") return { action: "keep", reason: "elsewhere" };
  if (!facts.owner) return { action: "keep", reason: "owner-alive" };
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
