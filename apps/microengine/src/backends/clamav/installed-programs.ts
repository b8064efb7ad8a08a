import { existsSync } from "node:fs";

/**
 * True when a program named `name` is installed: at one of its usual `places` (where Debian and
 * a source build put it, PATH or not), or in a directory of `searchPath` (empty entries skipped).
 */
export function programInstalled(
  name: string,
  places: readonly string[],
  searchPath = process.env.PATH ?? "",
): boolean {
  return [
    ...places,
    ...searchPath
      .split(":")
      .filter(Boolean)
      .map((directory) => `${directory}/${name}`),
  ].some((path) => existsSync(path));
}
