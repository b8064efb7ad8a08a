// CommonJS entry (require): the same compiled addon as index.js. Requiring this module throws
// when it was not built (no libyara-dev at install time); @engine/yara turns that into a clear error.
const binding = require("./build/Release/yara_native.node");

/** Compiles rule sources; see index.d.cts. */
exports.compile = binding.compile;
/** Scans a Buffer or a file path; see index.d.cts. */
exports.scan = binding.scan;
/** The libyara version this addon was built against, e.g. "4.2.3". */
exports.version = binding.version;
