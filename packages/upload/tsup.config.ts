import { fileURLToPath } from "node:url";
import { defineConfig, type Options } from "tsup";
import { commonJsImportMetaUrl } from "../../scripts/tsup-commonjs.js";

const commonJs = commonJsImportMetaUrl(
  fileURLToPath(new URL("../../scripts/cjs-import-meta-url.ts", import.meta.url)),
);

// One entry per framework: an app that uses Express never loads the Fastify adapter.
const entry = {
  index: "src/index.ts",
  express: "src/adapters/express.ts",
  fastify: "src/adapters/fastify.ts",
  koa: "src/adapters/koa.ts",
  hono: "src/adapters/hono.ts",
  next: "src/adapters/next.ts",
};

const shared: Options = {
  target: "node20",
  entry,
  dts: { entry },
  sourcemap: true,
  splitting: true,
};

export default defineConfig([
  { ...shared, format: ["esm"], clean: ["**/*.js", "**/*.js.map", "**/*.d.ts"] },
  {
    ...shared,
    format: ["cjs"],
    clean: ["**/*.cjs", "**/*.cjs.map", "**/*.d.cts"],
    ...commonJs,
  },
]);
