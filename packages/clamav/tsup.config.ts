import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig, type Options } from "tsup";
import { commonJsImportMetaUrl } from "../../scripts/tsup-commonjs.js";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));
// CommonJS builds read import.meta.url from pathToFileURL(__filename) (tsup's shim mangles `#`, `%`).
const commonJs = commonJsImportMetaUrl(
  fileURLToPath(new URL("../../scripts/cjs-import-meta-url.ts", import.meta.url)),
);

const shared: Options = {
  entry: { index: "src/index.ts", managed: "src/managed.ts", testing: "src/testing.ts" },
  target: "node20",
  dts: true,
  sourcemap: true,
  splitting: true,
  define: { __ENGINE_CLAMAV_VERSION__: JSON.stringify(version) },
  // Optional and native: loaded at run time when installed, never bundled.
  external: ["@engine/clamav-native"],
};

export default defineConfig([
  // ESM for import, CommonJS for require (index.cjs, index.d.cts).
  { ...shared, format: ["esm"] },
  { ...shared, format: ["cjs"], ...commonJs },
]);
