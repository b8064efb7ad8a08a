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
  define: { __ENGINE_UNPACK_VERSION__: JSON.stringify(version) },
};

export default defineConfig([
  // ESM for import. The 7-Zip and cfb workers are their own entries: the extractors start
  // dist/seven-zip-worker.js and dist/cfb-worker.js from both formats (a worker is its own
  // module graph).
  {
    ...shared,
    entry: {
      index: "src/index.ts",
      "seven-zip-worker": "src/extractors/seven-zip-worker.ts",
      "cfb-worker": "src/extractors/cfb-worker.ts",
    },
    format: ["esm"],
    // Each build cleans only its own files (they run at the same time).
    clean: ["**/*.js", "**/*.js.map", "**/*.d.ts"],
  },
  // CommonJS for require (index.cjs, index.d.cts).
  {
    ...shared,
    entry: { index: "src/index.ts" },
    format: ["cjs"],
    clean: ["**/*.cjs", "**/*.cjs.map", "**/*.d.cts"],
    ...commonJs,
  },
]);
