import type { Stats } from "node:fs";
import { lstat, readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { errorMessage } from "../../operations/error-message.js";

/** One entry of a walk: a file to scan, an entry that could not be read, or one that has nothing to scan. */
export type WalkEntry =
  | { kind: "file"; path: string }
  /** Could not be read (missing, dangling link, loop, permission): it was not scanned. */
  | { kind: "problem"; path: string; problem: string }
  /** Not a regular file (a FIFO, socket or device): never opened, as a read could block. */
  | { kind: "skipped"; path: string; reason: string };

function reasonOf(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  switch (code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "ELOOP":
      return "symbolic link loop";
    case "ENAMETOOLONG":
      return "path too long";
    default:
      return code ?? errorMessage(error);
  }
}

function kindOf(info: Stats): string {
  if (info.isFIFO()) return "a FIFO";
  if (info.isSocket()) return "a socket";
  if (info.isCharacterDevice() || info.isBlockDevice()) return "a device";
  return "not a regular file";
}

/**
 * The information of `path`, following a symbolic link; or the problem for its entry when it
 * cannot be read or its link cannot be followed.
 */
async function followedStats(path: string): Promise<Stats | { problem: string }> {
  let link: Stats;
  try {
    link = await lstat(path);
  } catch (error) {
    return { problem: `cannot read: ${reasonOf(error)}` };
  }
  if (!link.isSymbolicLink()) return link;
  try {
    return await stat(path);
  } catch (error) {
    const reason = reasonOf(error);
    return {
      problem:
        reason === "no such file or directory"
          ? "dangling symbolic link (its target does not exist)"
          : `cannot follow symbolic link: ${reason}`,
    };
  }
}

/**
 * The paths in a directory, in name order, or the problem listing it. A name that is not
 * UTF-8 comes as a problem entry: paths travel as strings, and it cannot be opened by its
 * decoded form.
 */
async function* directoryPaths(
  path: string,
): AsyncGenerator<{ kind: "path"; path: string } | WalkEntry> {
  let names: Buffer[];
  try {
    names = await readdir(path, { encoding: "buffer" });
  } catch (error) {
    yield { kind: "problem", path, problem: `cannot list directory: ${reasonOf(error)}` };
    return;
  }
  for (const raw of names.sort(Buffer.compare)) {
    const name = raw.toString("utf8");
    if (!Buffer.from(name, "utf8").equals(raw))
      yield {
        kind: "problem",
        path: join(path, name),
        problem: "the file name is not valid UTF-8: not scanned (rename it)",
      };
    else yield { kind: "path", path: join(path, name) };
  }
}

/**
 * Walks files and directories (recursively, following symbolic links, in name order) and
 * yields every regular file once per path. It never stops on a bad entry: a missing path, a
 * dangling link, a link loop or an unreadable directory is yielded as a `problem` for that
 * entry, and the walk goes on. Each directory is entered once (by device and inode), so a link
 * back to an ancestor is a loop and two links to one directory cost one visit.
 */
export async function* walkPaths(paths: readonly string[]): AsyncGenerator<WalkEntry> {
  const entered = new Set<string>();

  async function* visit(
    path: string,
    ancestors: ReadonlySet<string>,
    named: boolean,
  ): AsyncGenerator<WalkEntry> {
    const info = await followedStats(path);
    if ("problem" in info) {
      yield { kind: "problem", path, problem: info.problem };
      return;
    }
    if (info.isFile()) {
      yield { kind: "file", path };
      return;
    }
    if (!info.isDirectory()) {
      // Found in a directory, a FIFO or device is skipped; named on the command line, the user
      // asked for it to be scanned, and it cannot be.
      yield named
        ? { kind: "problem", path, problem: `${kindOf(info)}: nothing to scan` }
        : { kind: "skipped", path, reason: kindOf(info) };
      return;
    }
    const key = `${info.dev}:${info.ino}`;
    if (ancestors.has(key)) {
      yield {
        kind: "problem",
        path,
        problem: "symbolic link loop (leads back to a parent directory)",
      };
      return;
    }
    if (entered.has(key)) return; // reached before through another link: scanned there
    entered.add(key);
    const inside = new Set(ancestors).add(key);
    for await (const entry of directoryPaths(path))
      if (entry.kind === "path") yield* visit(entry.path, inside, false);
      else yield entry;
  }

  for (const path of paths) yield* visit(resolve(path), new Set(), true);
}
