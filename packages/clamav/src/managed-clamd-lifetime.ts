import { type ChildProcess, execFile, type SpawnOptions, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * How a managed clamd is bound to the life of the process that starts it, so that it never
 * outlives it, whatever ends it (SIGKILL included):
 * - `setpriv`: util-linux `setpriv --pdeathsig SIGKILL -- clamd ...` asks the kernel
 *   (PR_SET_PDEATHSIG) to SIGKILL clamd when its parent dies, then execs clamd in place, so
 *   the child's pid is clamd's own.
 * - `watchdog`: where setpriv (or its `--pdeathsig`) is missing, a small `sh` beside clamd
 *   reads a pipe only this process writes to; the pipe ends when this process does, however
 *   it ends, and the watchdog then SIGKILLs clamd. It is killed when clamd exits first.
 */
export type ParentDeathGuard =
  | { readonly kind: "setpriv"; readonly setpriv: string }
  | { readonly kind: "watchdog" };

const probes = new Map<string, Promise<ParentDeathGuard>>();

function findSetpriv(): string | undefined {
  for (const directory of (process.env.PATH ?? "").split(":").concat(["/usr/bin", "/bin"])) {
    const candidate = join(directory, "setpriv");
    if (directory && existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Whether `setpriv --pdeathsig SIGKILL -- <clamd> --version` runs here (util-linux >= 2.33). */
function setprivWorks(setpriv: string, clamdPath: string): Promise<boolean> {
  return new Promise((resolveProbe) => {
    execFile(
      setpriv,
      ["--pdeathsig", "SIGKILL", "--", clamdPath, "--version"],
      { timeout: 10_000 },
      (error) => resolveProbe(!error),
    );
  });
}

/**
 * The guard this machine offers for `clamdPath`: setpriv on Linux when it is installed and its
 * `--pdeathsig` works (probed once per clamd path), else the watchdog.
 */
export function parentDeathGuard(clamdPath: string): Promise<ParentDeathGuard> {
  let probe = probes.get(clamdPath);
  if (!probe) {
    const setpriv = process.platform === "linux" ? findSetpriv() : undefined;
    probe = setpriv
      ? setprivWorks(setpriv, clamdPath).then((works) =>
          works ? { kind: "setpriv", setpriv } : { kind: "watchdog" },
        )
      : Promise.resolve({ kind: "watchdog" });
    probes.set(clamdPath, probe);
  }
  return probe;
}

// Ignores the terminal's signals (they reach the whole group; the end of the pipe is what
// counts), reads until end of file, then kills clamd ($1).
const watchdogScript =
  'trap "" HUP INT QUIT TERM; while read -r _; do :; done; kill -KILL "$1" 2>/dev/null';

/** Starts the watchdog of `child`; it never keeps this process's event loop alive. */
function watch(child: ChildProcess, pid: number): void {
  const watchdog = spawn("/bin/sh", ["-c", watchdogScript, "engine-clamd-watchdog", String(pid)], {
    stdio: ["pipe", "ignore", "ignore"],
  });
  watchdog.on("error", () => {
    // No watchdog (no /bin/sh): clamd runs unguarded; the next start's sweep is the fallback.
  });
  watchdog.stdin?.on("error", () => {});
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.unref();
  // Once clamd has exited its pid may be reused: the watchdog must not outlive it.
  child.once("exit", () => watchdog.kill("SIGKILL"));
}

/**
 * Spawns clamd bound by `guard` to the life of the calling thread. The child's `pid` is
 * clamd's own either way, and signals sent to the child reach clamd (setpriv execs it).
 *
 * PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process:
 * libuv forks from the thread that calls `spawn`, which is the main thread, or a worker
 * thread's own thread when a `worker_threads` Worker starts the clamd (its clamd then ends
 * with that worker, not with the process).
 * A process killed between the fork and the prctl (or, with the watchdog, between the two
 * spawns) leaves its clamd to the next start's sweep of dead owners' directories.
 */
export function spawnBound(
  command: string,
  args: readonly string[],
  guard: ParentDeathGuard,
  options: SpawnOptions,
): ChildProcess {
  if (guard.kind === "setpriv") {
    return spawn(guard.setpriv, ["--pdeathsig", "SIGKILL", "--", command, ...args], options);
  }
  const child = spawn(command, args, options);
  if (child.pid !== undefined) watch(child, child.pid);
  return child;
}
