import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import {
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BackendUnavailableError, InvalidOptionsError, parseOptions } from "@engine/core";
import { z } from "zod";
import { requiredClamdAlertSettings } from "./clamd-alert-check.js";
import { ClamdClient } from "./clamd-client.js";
import { type ParentDeathGuard, parentDeathGuard, spawnBound } from "./managed-clamd-lifetime.js";
import {
  managedConfigName,
  managedDirectoryPrefix,
  type OwnerRecord,
  writeOwnerRecord,
} from "./managed-clamd-owner.js";
import {
  defaultSweepBudgetMs,
  removeStaleClamdDirectories,
  type StaleClamdSweep,
} from "./managed-clamd-sweep.js";
import { identityOf, readPidScope } from "./process-identity.js";

/**
 * The signature database shipped with this package (EICAR by md5, a body and a logical
 * signature; see `signatures/README.md`). Enough for clamd to start and for tests.
 */
export const shippedSignaturesDirectory: string = fileURLToPath(
  new URL("../signatures/", import.meta.url),
);

/** Database file extensions clamd loads. */
const databaseExtensions =
  /\.(cvd|cld|cud|hdb|hsb|hdu|hsu|mdb|msb|mdu|msu|ndb|ndu|ldb|ldu|idb|ndb|cdb|crb|cbc|pdb|gdb|wdb|ftm|fp|sfp|ign|ign2|info|yar|yara)$/;

/** Options of {@link startManagedClamd}. */
export const managedClamdOptionsSchema = z.strictObject({
  /**
   * Directories whose database files clamd loads, all linked into one database directory.
   * Default: the shipped signatures only. Add `/var/lib/clamav` for the official database.
   */
  databaseDirectories: z.array(z.string().min(1)).min(1).optional(),
  /** Listen on a unix socket in the managed directory. Default true. */
  socket: z.boolean().default(true),
  /** Listen on a free loopback TCP port (or this port). Default true. */
  tcp: z.union([z.boolean(), z.number().int().min(1).max(65535)]).default(true),
  /**
   * Extra `clamd.conf` settings, e.g. `{ StreamMaxLength: "1M", DisableCache: true }`. They
   * override the defaults, which include the alert settings ({@link requiredClamdAlertSettings}:
   * encrypted archives and documents, and limits exceeded, are reported instead of `OK`).
   */
  config: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** Path of the clamd binary. Default: `clamd` on PATH, else `/usr/sbin/clamd`. */
  clamdPath: z.string().min(1).optional(),
  /** How long to wait for the first PONG, in ms (the official database takes seconds). Default 120000. */
  startTimeoutMs: z.number().int().positive().default(120_000),
});

/** Options of {@link startManagedClamd}; see {@link managedClamdOptionsSchema}. */
export type ManagedClamdOptions = z.input<typeof managedClamdOptionsSchema>;

/** A clamd started by {@link startManagedClamd}. Dispose it (`await using`) to stop it and remove its files. */
export interface ManagedClamd extends AsyncDisposable {
  /** The unix socket path, when listening on one. */
  readonly socketPath: string | undefined;
  /** `127.0.0.1`. */
  readonly host: string;
  /** The loopback TCP port, when listening on one. */
  readonly port: number | undefined;
  /** The managed directory (config, socket, database, temp files, log). */
  readonly directory: string;
  /** The database directory clamd loads. */
  readonly databaseDirectory: string;
  /**
   * A stable hash (12 hex digits) of the database files: a `signatures_version` for custom
   * databases. Updated by {@link ManagedClamd.relinkDatabases}.
   */
  readonly signaturesVersion: string;
  /**
   * Links the database directories' files again (after freshclam replaced or renamed them, e.g.
   * `daily.cvd` to `daily.cld`) and updates `signaturesVersion`; then send clamd `RELOAD`
   * (`ClamavScanner.reload()`) for it to load them.
   */
  relinkDatabases(): Promise<void>;
  /**
   * clamd's own process id while it runs (`/proc/<pid>/stat` is clamd's; no wrapper process
   * stands between: `setpriv` execs clamd in place).
   */
  readonly pid: number | undefined;
  /**
   * What this start's sweep did: the directories of managed clamds whose process died without
   * disposing them, removed (their clamd killed first when it still ran), and those of dead
   * owners left, with why. See {@link removeStaleClamdDirectories}.
   */
  readonly staleSweep: StaleClamdSweep;
  /** Client options for this clamd: over the unix socket (default when there is one) or TCP. */
  clientOptions(transport?: "socket" | "tcp"): { socket: string } | { host: string; port: number };
  /** Stops clamd (SIGTERM, then SIGKILL after 5 s) and keeps its files for `restart()`. */
  stop(): Promise<void>;
  /** Sends clamd `signal` (SIGKILL by default, as a crash would) and waits until it has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts clamd again with the same configuration, socket and port; resolves on PONG. */
  restart(): Promise<void>;
  /** clamd's log so far. */
  log(): Promise<string>;
}

function findClamd(explicit: string | undefined): string {
  if (explicit) return explicit;
  for (const directory of (process.env.PATH ?? "")
    .split(":")
    .concat(["/usr/sbin", "/usr/local/sbin"])) {
    const candidate = join(directory, "clamd");
    if (directory && existsSync(candidate)) return candidate;
  }
  throw new BackendUnavailableError({
    message: "@engine/clamav: the clamd binary was not found on PATH or in /usr/sbin",
    hint: "Install it (Debian/Ubuntu: apt-get install clamav-daemon) or pass clamdPath.",
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address
          ? resolvePort(address.port)
          : reject(new Error("no port")),
      );
    });
  });
}

async function linkDatabases(directories: string[], target: string): Promise<string> {
  const hash = createHash("sha256");
  const seen = new Set<string>();
  for (const directory of directories) {
    let names: string[];
    try {
      names = (await readdir(directory)).filter((name) => databaseExtensions.test(name)).sort();
    } catch (error) {
      throw new InvalidOptionsError({
        message: `@engine/clamav: the database directory ${directory} cannot be read`,
        hint: "Check databaseDirectories.",
        cause: error,
      });
    }
    for (const name of names) {
      if (seen.has(name)) continue; // the first directory wins on equal names
      seen.add(name);
      const source = resolve(directory, name);
      const destination = join(target, name);
      // (Present already when relinking: the shipped copies stay.)
      if (!existsSync(destination)) {
        if (directory === shippedSignaturesDirectory) await copyFile(source, destination);
        else await symlink(source, destination);
      }
      hash.update(name).update(await readFile(source));
    }
  }
  return hash.digest("hex").slice(0, 12);
}

function configText(settings: Record<string, string | number | boolean>): string {
  return Object.entries(settings)
    .map(([key, value]) => `${key} ${typeof value === "boolean" ? (value ? "yes" : "no") : value}`)
    .join("\n");
}

type ManagedClamdSettings = z.output<typeof managedClamdOptionsSchema>;

/** A managed directory, written: its owner record, database, and clamd's config. */
interface PreparedDirectory {
  readonly directory: string;
  readonly databaseDirectory: string;
  readonly signaturesVersion: string;
  readonly socketPath: string | undefined;
  readonly port: number | undefined;
  readonly configPath: string;
  readonly logPath: string;
  readonly owner: OwnerRecord;
}

/** Makes and fills the managed directory (removed again when that fails). */
async function prepareDirectory(settings: ManagedClamdSettings): Promise<PreparedDirectory> {
  const directory = await mkdtemp(join(tmpdir(), managedDirectoryPrefix));
  try {
    // First: a directory with an owner record is swept once this process is dead.
    const owner: OwnerRecord = {
      owner: await identityOf(),
      clamd: undefined,
      scope: await readPidScope(),
    };
    await writeOwnerRecord(directory, owner);
    const databaseDirectory = join(directory, "database");
    await mkdir(databaseDirectory);
    await mkdir(join(directory, "tmp"));
    const signaturesVersion = await linkDatabases(
      [shippedSignaturesDirectory, ...(settings.databaseDirectories ?? [])],
      databaseDirectory,
    );
    const socketPath = settings.socket ? join(directory, "clamd.sock") : undefined;
    const port =
      settings.tcp === true ? await freePort() : settings.tcp === false ? undefined : settings.tcp;
    const configPath = join(directory, managedConfigName);
    const logPath = join(directory, "clamd.log");
    await writeFile(
      configPath,
      `${configText({
        Foreground: true,
        DatabaseDirectory: databaseDirectory,
        TemporaryDirectory: join(directory, "tmp"),
        LogFile: logPath,
        LogTime: true,
        ...(socketPath ? { LocalSocket: socketPath, LocalSocketMode: "660" } : {}),
        ...(port ? { TCPSocket: port, TCPAddr: "127.0.0.1" } : {}),
        // What clamd cannot look inside is reported, never "OK" (the scanner answers unknown).
        ...requiredClamdAlertSettings,
        ...settings.config,
      })}\n`,
    );
    return {
      directory,
      databaseDirectory,
      signaturesVersion,
      socketPath,
      port,
      configPath,
      logPath,
      owner,
    };
  } catch (error) {
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Starts a private clamd for tests and for the engine's embedded default: writes a
 * `clamd.conf` in a temp directory (Foreground, its own unix socket and/or loopback port, a
 * database directory with the shipped signatures plus the directories you give, and the alert
 * settings so that encrypted or too-deep archives are reported, never `OK`), spawns the
 * Debian `clamd` binary, and resolves once it answers PONG.
 *
 * clamd never outlives the process that starts it: it is spawned through
 * `setpriv --pdeathsig SIGKILL` on Linux (else beside a watchdog), so that it is killed
 * whatever ends this process, SIGKILL included. Its directory holds an owner record (this
 * process's and clamd's pid and start time); each start first removes the directories of
 * owners that are provably dead ({@link removeStaleClamdDirectories}, reported in
 * `staleSweep`). Dispose it for a graceful stop (SIGTERM) and its files removed at once.
 *
 * @example
 * await using clamd = await startManagedClamd({ config: { StreamMaxLength: "10M" } });
 * const scanner = createClamavScanner(clamd.clientOptions());
 */
export function startManagedClamd(options: ManagedClamdOptions = {}): Promise<ManagedClamd> {
  return startManagedClamdWith(options, undefined);
}

/**
 * {@link startManagedClamd} with the parent-death guard chosen (tests force the watchdog);
 * undefined: the best this machine offers. Not part of the package's entries.
 */
export async function startManagedClamdWith(
  options: ManagedClamdOptions,
  chosenGuard: ParentDeathGuard | undefined,
): Promise<ManagedClamd> {
  const settings = parseOptions(managedClamdOptionsSchema, options, {
    where: "@engine/clamav: startManagedClamd",
  });
  if (!settings.socket && settings.tcp === false) {
    throw new InvalidOptionsError({
      message: "@engine/clamav: startManagedClamd needs socket or tcp",
    });
  }
  const clamdPath = findClamd(settings.clamdPath);
  const guard = chosenGuard ?? (await parentDeathGuard(clamdPath));
  // Bounded: at most a few seconds, and a small part of the start timeout.
  const staleSweep = await removeStaleClamdDirectories({
    budgetMs: Math.min(defaultSweepBudgetMs, Math.ceil(settings.startTimeoutMs / 4)),
  });
  const prepared = await prepareDirectory(settings);
  const { directory, databaseDirectory, socketPath, port, configPath, logPath, owner } = prepared;
  let signaturesVersion = prepared.signaturesVersion;

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let output = "";
  const endpoint = socketPath
    ? { socket: socketPath }
    : { host: "127.0.0.1", port: port as number };

  const launch = async (): Promise<void> => {
    output = "";
    const started = spawnBound(clamdPath, [`--config-file=${configPath}`], guard, {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = started;
    const onOutput = (data: Buffer): void => {
      output = (output + data.toString()).slice(-8192);
    };
    started.stdout?.on("data", onOutput);
    started.stderr?.on("data", onOutput);
    let exitCode: number | null | undefined;
    exited = new Promise((resolveExit) => {
      started.once("exit", (code) => {
        exitCode = code;
        if (child === started) child = undefined;
        resolveExit();
      });
      started.once("error", (error) => {
        output += `\n${error.message}`;
        exitCode = -1;
        resolveExit();
      });
    });
    // Who runs in this directory now, for the sweeps of other starts should this process die.
    if (started.pid !== undefined) {
      await writeOwnerRecord(directory, { ...owner, clamd: await identityOf(started.pid) });
    }
    const client = new ClamdClient({ ...endpoint, connectTimeoutMs: 500, readTimeoutMs: 1000 });
    const deadline = Date.now() + settings.startTimeoutMs;
    for (;;) {
      if (exitCode !== undefined) {
        throw new BackendUnavailableError({
          message: `@engine/clamav: clamd exited during start (code ${exitCode}): ${output.trim().slice(-1000)}`,
          hint: `Check ${configPath} and the database files in ${databaseDirectory}.`,
        });
      }
      try {
        await client.ping();
        return;
      } catch {
        if (Date.now() > deadline) {
          started.kill("SIGKILL");
          throw new BackendUnavailableError({
            message: `@engine/clamav: clamd did not answer PING within ${settings.startTimeoutMs} ms`,
            hint: "A large database takes time to load; raise startTimeoutMs.",
          });
        }
        await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      }
    }
  };

  const stopProcess = async (signal: NodeJS.Signals): Promise<void> => {
    const running = child;
    if (!running) return;
    running.kill(signal);
    const forced = setTimeout(() => running.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(forced);
  };

  try {
    await launch();
  } catch (error) {
    await stopProcess("SIGKILL");
    await rm(directory, { recursive: true, force: true });
    throw error;
  }

  const dispose = async (): Promise<void> => {
    await stopProcess("SIGTERM");
    await rm(directory, { recursive: true, force: true });
  };
  return {
    socketPath,
    host: "127.0.0.1",
    port,
    directory,
    databaseDirectory,
    get signaturesVersion() {
      return signaturesVersion;
    },
    relinkDatabases: async () => {
      // The shipped signatures are copies; the other directories' files are symbolic links,
      // dropped and made again from what the directories hold now.
      for (const name of await readdir(databaseDirectory)) {
        const path = join(databaseDirectory, name);
        if ((await lstat(path)).isSymbolicLink()) await rm(path, { force: true });
      }
      signaturesVersion = await linkDatabases(
        [shippedSignaturesDirectory, ...(settings.databaseDirectories ?? [])],
        databaseDirectory,
      );
    },
    get pid() {
      return child?.pid;
    },
    staleSweep,
    clientOptions: (transport) => {
      if (transport === "tcp" || !socketPath) {
        if (port === undefined)
          throw new InvalidOptionsError({ message: "@engine/clamav: this clamd has no TCP port" });
        return { host: "127.0.0.1", port };
      }
      return { socket: socketPath };
    },
    stop: () => stopProcess("SIGTERM"),
    kill: (signal = "SIGKILL") => stopProcess(signal),
    restart: async () => {
      await stopProcess("SIGTERM");
      await launch();
    },
    log: () => readFile(logPath, "utf8").catch(() => output),
    [Symbol.asyncDispose]: dispose,
  };
}
