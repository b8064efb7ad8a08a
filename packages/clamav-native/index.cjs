// CommonJS entry (require): the same compiled addon as index.js. Requiring this module throws
// when the addon was not built; @engine/clamav then falls back to SCAN <path> or INSTREAM.
const binding = require("./build/Release/clamav_native.node");

/** Sends `zFILDES` and the open file to clamd's unix socket; resolves with clamd's reply. */
exports.scanFileDescriptor = binding.scanFileDescriptor;
