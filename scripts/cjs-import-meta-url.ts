// Injected into the CommonJS builds (see the packages' tsup configs): `import.meta.url` for a
// CommonJS file. pathToFileURL escapes `#`, `%` and `?` in the install path, which tsup's own
// shim (`new URL("file:" + __filename)`) does not.
import { pathToFileURL } from "node:url";

export const importMetaUrl: string = pathToFileURL(__filename).href;
