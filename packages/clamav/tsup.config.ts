import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

export default defineConfig({
  entry: { index: "src/index.ts", testing: "src/testing.ts" },
  // ESM for import, CommonJS for require (index.cjs, index.d.cts); import.meta.url is shimmed in CJS.
  format: ["esm", "cjs"],
  shims: true,
  target: "node20",
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
  define: { __ENGINE_CLAMAV_VERSION__: JSON.stringify(version) },
  // Optional and native: loaded at run time when installed, never bundled.
  external: ["@engine/clamav-native"],
});
