import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";
import { engineVitestConfig } from "../../vitest.shared.js";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

export default defineConfig(
  engineVitestConfig(import.meta.dirname, {
    define: { __ENGINE_UNPACK_VERSION__: JSON.stringify(version) },
  }),
);
