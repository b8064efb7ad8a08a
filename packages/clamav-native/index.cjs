// CommonJS entry (require): the same compiled addon as index.js. Requiring this module throws
// when the addon was not built; @engine/clamav then falls back to SCAN <path> or INSTREAM.
const binding = require("./build/Release/clamav_native.node");

/** Sends `zFILDES` and an open descriptor on a kept clamd session socket (synchronous, non-blocking). */
exports.sendFileDescriptor = binding.sendFileDescriptor;

/** Opens a regular file, sends it with FILDES and closes it, in one trip to the thread pool. */
exports.sendRegularFile = binding.sendRegularFile;

/** A sealed memory file (memfd) holding a copy of the bytes, for FILDES; the caller closes it. */
exports.memoryFile = binding.memoryFile;
