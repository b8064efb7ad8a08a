// Loads the compiled addon (build/Release/yara_native.node). Importing this module throws when
// it was not built (no libyara-dev at install time); @engine/yara turns that into a clear error.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const binding = require("./build/Release/yara_native.node");

/** Compiles rule sources; see index.d.cts. */
export const compile = binding.compile;
/** Scans a Buffer or a file path; see index.d.cts. */
export const scan = binding.scan;
/** The libyara version this addon was built against, e.g. "4.2.3". */
export const version = binding.version;
