import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

export default defineConfig({
  // The walk's worker is its own entry: walk-thread.ts starts dist/walk-worker.js.
  entry: { cli: "src/cli.ts", "walk-worker": "src/commands/scan/walk-worker.ts" },
  format: ["esm"],
  target: "node20",
  dts: false,
  sourcemap: true,
  clean: true,
  banner: { js: "" },
  define: { __ENGINE_MICROENGINE_VERSION__: JSON.stringify(version) },
});
