import { readFileSync } from "node:fs";
import { defineConfig } from "vitest/config";
import { engineVitestConfig } from "../../vitest.shared.js";

const { version } = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));

// The YARA worker threads run dist/yara-worker.js: `turbo run test` builds this package first.
export default defineConfig(
  engineVitestConfig(import.meta.dirname, {
    define: { __ENGINE_YARA_VERSION__: JSON.stringify(version) },
  }),
);
