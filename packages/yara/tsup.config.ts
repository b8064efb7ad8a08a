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
  // CommonJS for require (index.cjs, index.d.cts). One entry, so no splitting: with it, tsup
  // rewrites import() into require(), which cannot load ESM-only packages (file-type).
  { ...shared, entry: { index: "src/index.ts" }, format: ["cjs"], splitting: false, ...commonJs },
]);
