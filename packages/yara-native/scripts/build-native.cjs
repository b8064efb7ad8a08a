// Builds the addon with node-gyp when libyara's headers are installed (Debian: libyara-dev).
// Without them the package installs anyway and @engine/yara's native engine reports how to
// get it: the WebAssembly engine does not need it.
const { existsSync } = require("node:fs");
const { spawnSync } = require("node:child_process");
const { join } = require("node:path");

const root = join(__dirname, "..");
if (!existsSync("/usr/include/yara.h") && !existsSync("/usr/local/include/yara.h")) {
  console.warn(
    "@engine/yara-native: libyara headers not found (apt-get install libyara-dev); the native YARA engine is not built",
  );
  process.exit(0);
}
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
console.warn("@engine/yara-native: the native build failed; the native YARA engine is unavailable");
process.exit(0);
