import { readFileSync } from "node:fs";
import { defineConfig, type Options } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

const shared: Options = {
  target: "node20",
  dts: { entry: { index: "src/index.ts" } },
  sourcemap: true,
  splitting: true,
  define: { __ENGINE_YARA_VERSION__: JSON.stringify(version) },
  // Optional and native: loaded at run time when installed, never bundled.
  external: ["@engine/yara-native"],
};

export default defineConfig([
  // ESM for import. The worker is its own entry: the pool starts dist/yara-worker.js in both
  // formats (a worker is its own module graph).
  {
    ...shared,
    entry: { index: "src/index.ts", "yara-worker": "src/yara-worker.ts" },
    format: ["esm"],
  },
  // CommonJS for require (index.cjs, index.d.cts); import.meta.url is shimmed.
  { ...shared, entry: { index: "src/index.ts" }, format: ["cjs"], shims: true },
]);
