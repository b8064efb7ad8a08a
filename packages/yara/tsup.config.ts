import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

export default defineConfig({
  // The worker is its own entry: the pool starts it from dist/yara-worker.js.
  entry: { index: "src/index.ts", "yara-worker": "src/yara-worker.ts" },
  format: ["esm"],
  target: "node20",
  dts: { entry: { index: "src/index.ts" } },
  sourcemap: true,
  clean: true,
  splitting: true,
  define: { __ENGINE_YARA_VERSION__: JSON.stringify(version) },
  // Optional and native: loaded at run time when installed, never bundled.
  external: ["@engine/yara-native"],
});
