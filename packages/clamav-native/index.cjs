// CommonJS entry (require): the same compiled addon as index.js. Requiring this module throws
// when the addon was not built; @engine/clamav then falls back to SCAN <path> or INSTREAM.
const binding = require("./build/Release/clamav_native.node");

/** Sends `zFILDES` and an open file on a kept clamd session socket (synchronous, non-blocking). */
exports.sendFileDescriptor = binding.sendFileDescriptor;

/** Opens a regular file for FILDES on the thread pool; resolves its descriptor and size. */
exports.openRegularFile = binding.openRegularFile;

/** A sealed memory file (memfd) holding a copy of the bytes, for FILDES; the caller closes it. */
exports.memoryFile = binding.memoryFile;
