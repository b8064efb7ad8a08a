import { readFile, readlink } from "node:fs/promises";

/**
 * What can be known of a process id: gone (no such process, or a zombie: dead, not yet
 * reaped), or running since `startTime` (`/proc/<pid>/stat` field 22, clock ticks since boot;
 * undefined where there is no `/proc`, or where its stat could not be read for another reason
 * than the process being gone: then nothing is known, and nothing is proven). A pid and its
 * start time name one process: a pid reused by another process has another start time.
 */
export type ProcessProbe = { state: "gone" } | { state: "running"; startTime: string | undefined };

/** A process id as the owner record stores it: the pid and its start time. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly startTime: string | undefined;
}

/**
 * The state letter (field 3) and start time (field 22) of a `/proc/<pid>/stat` line, or
 * undefined when it is not one. The command name (field 2) is in parentheses and may hold
 * spaces and parentheses itself: the fields are counted after its last `)`.
 */
export function parseProcStat(text: string): { state: string; startTime: string } | undefined {
  const end = text.lastIndexOf(")");
  if (end === -1) return undefined;
  const fields = text
    .slice(end + 1)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state), so field 22 is fields[19].
  const state = fields[0];
  const startTime = fields[19];
  if (!state || !/^[A-Za-z]$/.test(state) || !startTime || !/^\d+$/.test(startTime)) {
    return undefined;
  }
  return { state, startTime };
}

const processFilesystem = async (): Promise<boolean> =>
  readFile("/proc/self/stat", "utf8").then(
    (text) => parseProcStat(text) !== undefined,
    () => false,
  );

/** Whether `pid` exists, by signal 0, where there is no `/proc` (EPERM: it does, not ours). */
function signalProbe(pid: number): ProcessProbe {
  try {
    process.kill(pid, 0);
    return { state: "running", startTime: undefined };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ESRCH" ? { state: "gone" } : { state: "running", startTime: undefined };
  }
}

/** Reads a `/proc` file as text (the default reader of {@link probeProcess}). */
export type ProcReader = (path: string) => Promise<string>;

const readProcFile: ProcReader = (path) => readFile(path, "utf8");

/**
 * Probes `pid`: from `/proc/<pid>/stat` on Linux, else by signal 0 (no start time). Only
 * ENOENT and ESRCH of its stat (where `/proc` itself works) mean the process is gone: any
 * other error (EMFILE, ENOMEM, EAGAIN, EACCES...) says nothing of it, and it is reported
 * running with an unknown start time, which proves nothing dead.
 */
export async function probeProcess(
  pid: number,
  read: ProcReader = readProcFile,
): Promise<ProcessProbe> {
  let text: string;
  try {
    text = await read(`/proc/${pid}/stat`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ESRCH") return { state: "running", startTime: undefined };
    return (await processFilesystem()) ? { state: "gone" } : signalProbe(pid);
  }
  const stat = parseProcStat(text);
  if (!stat) return { state: "running", startTime: undefined };
  // Z: a zombie, X: dead. Neither runs any more; their pid is not free yet.
  if (stat.state === "Z" || stat.state === "X") return { state: "gone" };
  return { state: "running", startTime: stat.startTime };
}

/** The identity of `pid` (default: this process): the pid and its start time, when known. */
export async function identityOf(pid: number = process.pid): Promise<ProcessIdentity> {
  const probe = await probeProcess(pid);
  return { pid, startTime: probe.state === "running" ? probe.startTime : undefined };
}

/** The arguments `pid` was started with (`/proc/<pid>/cmdline`), or undefined when unreadable. */
export async function processArguments(pid: number): Promise<string[] | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/cmdline`, "utf8");
    return text.split("\0").filter((argument) => argument !== "");
  } catch {
    return undefined;
  }
}

/**
 * What a pid is relative to: the PID namespace it was read in (`/proc/self/ns/pid`, e.g.
 * `pid:[4026531836]`) and the boot (`/proc/sys/kernel/random/boot_id`). Two containers sharing
 * one /tmp see each other's owner records, but a pid means something only in the namespace
 * and boot it was read in. Undefined where it cannot be read. Where there are no PID
 * namespaces at all (not Linux) the namespace is `none:<platform>`: one pid space per machine.
 */
export interface PidScope {
  readonly pidNamespace: string | undefined;
  readonly bootId: string | undefined;
}

/** This process's {@link PidScope}. Never throws. */
export async function readPidScope(): Promise<PidScope> {
  if (process.platform !== "linux") {
    return { pidNamespace: `none:${process.platform}`, bootId: undefined };
  }
  const [pidNamespace, bootId] = await Promise.all([
    readlink("/proc/self/ns/pid").then(
      (link) => (/^pid:\[\d{1,20}\]$/.test(link) ? link : undefined),
      () => undefined,
    ),
    readFile("/proc/sys/kernel/random/boot_id", "utf8").then(
      (text) => (/^[0-9a-f-]{36}$/.test(text.trim()) ? text.trim() : undefined),
      () => undefined,
    ),
  ]);
  return { pidNamespace, bootId };
}
