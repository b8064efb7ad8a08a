// Helpers of the managed clamd lifetime tests: a child Node process that starts a managed
// clamd, a hand-made orphan clamd of a dead owner, and what /proc says of processes.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { shippedSignaturesDirectory } from "../src/managed-clamd.js";
import { provablyDead, writeOwnerRecord } from "../src/managed-clamd-owner.js";
import {
  identityOf,
  type ProcessIdentity,
  probeProcess,
  readPidScope,
} from "../src/process-identity.js";

const packageDirectory = fileURLToPath(new URL("../", import.meta.url));

/** The clamd binary, as startManagedClamd finds it. */
export const clamdPath =
  (process.env.PATH ?? "")
    .split(":")
    .concat(["/usr/sbin", "/usr/local/sbin"])
    .map((directory) => join(directory, "clamd"))
    .find((candidate) => existsSync(candidate)) ?? "clamd";

interface Esbuild {
  build(options: Record<string, unknown>): Promise<unknown>;
}

/**
 * Bundles test/fixtures/managed-clamd-child.ts into `directory` (Node 20 runs no TypeScript);
 * `import.meta.url` stays the source's, so the shipped signatures are found.
 */
export async function bundleChild(directory: string): Promise<string> {
  const fromTsup = createRequire(createRequire(import.meta.url).resolve("tsup"));
  const esbuild = (await import(pathToFileURL(fromTsup.resolve("esbuild")).href)) as Esbuild;
  const outfile = join(directory, "managed-clamd-child.mjs");
  await esbuild.build({
    entryPoints: [join(packageDirectory, "test/fixtures/managed-clamd-child.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    external: ["@engine/clamav-native"],
    define: {
      __ENGINE_CLAMAV_VERSION__: '"0.0.0-test"',
      "import.meta.url": JSON.stringify(pathToFileURL(join(packageDirectory, "src/x.ts")).href),
    },
    logLevel: "error",
  });
  return outfile;
}

/** A child Node process that started a managed clamd, and what it printed of it. */
export interface OwnerChild {
  readonly child: ChildProcess;
  readonly clamdPid: number;
  readonly directory: string;
}

/**
 * Runs the bundled child in `mode` ("auto" or "watchdog") with TMPDIR `parent`, through
 * `wrapper` (a command and its arguments before node's) when given; resolves once its clamd
 * answers.
 */
export function startOwnerChild(
  bundle: string,
  mode: "auto" | "watchdog",
  parent: string,
  wrapper: readonly string[] = [],
): Promise<OwnerChild> {
  const [command = process.execPath, ...args] = [...wrapper, process.execPath, bundle, mode];
  const child = spawn(command, args, {
    env: { ...process.env, TMPDIR: parent },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let errors = "";
  child.stderr?.on("data", (data: Buffer) => {
    errors += data.toString();
  });
  return new Promise((resolveStart, reject) => {
    child.stdout?.on("data", (data: Buffer) => {
      output += data.toString();
      if (!output.includes("\n")) return;
      const { pid, directory } = JSON.parse(output) as { pid: number; directory: string };
      resolveStart({ child, clamdPid: pid, directory });
    });
    child.once("exit", (code) => reject(new Error(`the child exited (${code}): ${errors}`)));
  });
}

/** Whether the process `identity` names has ended within `timeoutMs`. */
export async function endsWithin(identity: ProcessIdentity, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (provablyDead(identity, await probeProcess(identity.pid))) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolveWait) => setTimeout(resolveWait, 50));
  }
}

/** The command name and parent pid of `pid`, from /proc. */
export async function processInfo(pid: number): Promise<{ name: string; parent: number }> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return {
    name: /^Name:\s*(.*)$/m.exec(status)?.[1] ?? "",
    parent: Number(/^PPid:\s*(\d+)$/m.exec(status)?.[1]),
  };
}

/** The pids of the running children of `parent` whose command line includes `text`. */
export async function childrenNaming(parent: number, text: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const info = await processInfo(Number(name));
      const commandLine = await readFile(`/proc/${name}/cmdline`, "utf8");
      if (info.parent === parent && commandLine.includes(text)) found.push(Number(name));
    } catch {
      // Ended while looked at.
    }
  }
  return found;
}

/**
 * A managed directory in `parent` left as a dead owner leaves it when its clamd survived it:
 * a config, the shipped database, an owner record naming an owner (a `sh`, SIGKILLed here)
 * and its clamd, which still runs, orphaned. Returns the directory and the clamd's identity.
 */
export async function orphanedClamd(
  parent: string,
): Promise<{ directory: string; owner: ProcessIdentity; clamd: ProcessIdentity }> {
  const directory = await mkdtemp(join(parent, "engine-clamd-"));
  const database = join(directory, "database");
  await mkdir(database);
  await mkdir(join(directory, "tmp"));
  for (const name of await readdir(shippedSignaturesDirectory)) {
    if (!name.endsWith(".md"))
      await copyFile(join(shippedSignaturesDirectory, name), join(database, name));
  }
  const config = join(directory, "clamd.conf");
  await writeFile(
    config,
    `Foreground yes\nDatabaseDirectory ${database}\nTemporaryDirectory ${join(directory, "tmp")}\nLocalSocket ${join(directory, "clamd.sock")}\nLogFile ${join(directory, "clamd.log")}\n`,
  );
  const owner = spawn(
    "/bin/sh",
    [
      "-c",
      '"$0" --config-file="$1" </dev/null >/dev/null 2>&1 & echo $!; exec sleep 300',
      clamdPath,
      config,
    ],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  const clamdPid = await new Promise<number>((resolvePid) =>
    owner.stdout?.once("data", (data: Buffer) => resolvePid(Number(data.toString().trim()))),
  );
  const ownerIdentity = await identityOf(owner.pid);
  const clamdIdentity = await identityOf(clamdPid);
  // The fork is clamd once it has exec'd: its command line names the config.
  const deadline = Date.now() + 10_000;
  while (!(await readFile(`/proc/${clamdPid}/cmdline`, "utf8")).includes(config)) {
    if (Date.now() > deadline) throw new Error("the orphan clamd did not start");
    await new Promise((resolveWait) => setTimeout(resolveWait, 20));
  }
  await writeOwnerRecord(directory, {
    owner: ownerIdentity,
    clamd: clamdIdentity,
    scope: await readPidScope(),
  });
  await new Promise((resolveExit) => owner.once("exit", resolveExit).kill("SIGKILL"));
  return { directory, owner: ownerIdentity, clamd: clamdIdentity };
}
