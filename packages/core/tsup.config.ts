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
  dts: true,
  sourcemap: true,
  splitting: true,
  define: { __ENGINE_CORE_VERSION__: JSON.stringify(version) },
  external: ["vitest"],
};

export default defineConfig([
  // ESM for import. `testing` (describeScanner) calls vitest, which is ESM only.
  {
    ...shared,
    entry: {
      index: "src/index.ts",
      conformance: "src/testing/conformance.ts",
      testing: "src/testing/index.ts",
    },
    format: ["esm"],
  },
  // CommonJS for require (index.cjs, index.d.cts).
  {
    ...shared,
    entry: { index: "src/index.ts", conformance: "src/testing/conformance.ts" },
    format: ["cjs"],
    ...commonJs,
  },
]);
