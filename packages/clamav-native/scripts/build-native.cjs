// Builds the FILDES addon with node-gyp (needs a C++ toolchain). When it cannot be built the
// package installs anyway and @engine/clamav uses SCAN <path> or INSTREAM instead.
const { existsSync } = require("node:fs");
const { spawnSync } = require("node:child_process");
const { join } = require("node:path");

const root = join(__dirname, "..");
// Build against the installed Node headers when there are some: there is no download here.
const nodedir =
  process.env.npm_config_nodedir ||
  (existsSync(join(process.execPath, "../../include/node/node_api.h"))
    ? join(process.execPath, "../..")
    : undefined);
const gypArguments = ["rebuild", ...(nodedir ? [`--nodedir=${nodedir}`] : [])];
const candidates = [
  process.env.npm_config_node_gyp,
  join(root, "node_modules", ".bin", "node-gyp"),
  "node-gyp",
  join(process.execPath, "../../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"),
].filter(Boolean);
for (const command of candidates) {
  const isScript = command.endsWith(".js");
  const result = spawnSync(
    isScript ? process.execPath : command,
    [...(isScript ? [command] : []), ...gypArguments],
    {
      cwd: root,
      stdio: "inherit",
    },
  );
  if (result.status === 0) process.exit(0);
  if (result.error?.code !== "ENOENT" && result.status !== 127) break;
}
console.warn(
  "@engine/clamav-native: the native build failed; clamd FILDES is unavailable (@engine/clamav streams instead)",
);
process.exit(0);
