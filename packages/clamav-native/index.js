// Loads the compiled addon (build/Release/clamav_native.node). Importing this module throws when
// it was not built; @engine/clamav then falls back to SCAN <path> or INSTREAM.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const binding = require("./build/Release/clamav_native.node");

/** Sends `zFILDES` and an open descriptor on a kept clamd session socket (synchronous, non-blocking). */
export const sendFileDescriptor = binding.sendFileDescriptor;

/** Opens a regular file, sends it with FILDES and closes it, in one trip to the thread pool. */
export const sendRegularFile = binding.sendRegularFile;

/** A sealed memory file (memfd) holding a copy of the bytes, for FILDES; the caller closes it. */
export const memoryFile = binding.memoryFile;
