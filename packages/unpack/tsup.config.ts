import { readFileSync } from "node:fs";
import { defineConfig } from "tsup";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

export default defineConfig({
  entry: { index: "src/index.ts" },
  // ESM for import, CommonJS for require (index.cjs, index.d.cts); no import.meta here.
  format: ["esm", "cjs"],
  target: "node20",
  dts: true,
  sourcemap: true,
  clean: true,
  splitting: true,
  define: { __ENGINE_UNPACK_VERSION__: JSON.stringify(version) },
});
