import type { Options } from "tsup";

/**
 * tsup options for a CommonJS build whose code reads `import.meta.url`: it becomes the
 * `importMetaUrl` exported by `injectPath` (scripts/cjs-import-meta-url.ts, given by the caller
 * as an absolute path), built with pathToFileURL.
 */
export function commonJsImportMetaUrl(injectPath: string): Options {
  return {
    inject: [injectPath],
    esbuildOptions(options) {
      options.define = { ...options.define, "import.meta.url": "importMetaUrl" };
    },
  };
}
