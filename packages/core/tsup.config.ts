import { readFileSync } from "node:fs";
import { defineConfig, type Options } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

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
  // CommonJS for require (index.cjs, index.d.cts); import.meta.url is shimmed.
  {
    ...shared,
    entry: { index: "src/index.ts", conformance: "src/testing/conformance.ts" },
    format: ["cjs"],
    shims: true,
  },
]);
