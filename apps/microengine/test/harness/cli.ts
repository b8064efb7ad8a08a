import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

/** The built CLI, as operators run it (turbo builds it before test:int). */
export const cliPath = join(import.meta.dirname, "../../bin/microengine.cjs");

/** Runs a command with arguments; resolves with its exit code and output (never rejects on a non-zero exit). */
export const run = promisify(execFile);

/** What a CLI run printed and how it ended. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `microengine <args>` (LOG_LEVEL=warn unless set), optionally in `cwd` and, with `user`,
 * as that uid and gid (through setpriv; for tests that need a non-root reader).
 */
export async function microengine(
  args: string[],
  environment: Record<string, string> = {},
  options: { cwd?: string; user?: number } = {},
): Promise<CliRun> {
  const command =
    options.user === undefined
      ? [process.execPath, cliPath, ...args]
      : [
          "setpriv",
          `--reuid=${options.user}`,
          `--regid=${options.user}`,
          "--clear-groups",
          process.execPath,
          cliPath,
          ...args,
        ];
  try {
    const { stdout, stderr } = await run(command[0] as string, command.slice(1), {
      env: { ...process.env, LOG_LEVEL: "warn", ...environment },
      timeout: 120_000,
      maxBuffer: 64 * 1024 * 1024,
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
