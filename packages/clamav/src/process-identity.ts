import { readFile } from "node:fs/promises";

/**
 * What can be known of a process id: gone (no such process, or a zombie: dead, not yet
 * reaped), or running since `startTime` (`/proc/<pid>/stat` field 22, clock ticks since boot;
 * undefined where there is no `/proc`). A pid and its start time name one process: a pid
 * reused by another process has another start time.
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

/** Probes `pid`: from `/proc/<pid>/stat` on Linux, else by signal 0 (no start time). */
export async function probeProcess(pid: number): Promise<ProcessProbe> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch {
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
