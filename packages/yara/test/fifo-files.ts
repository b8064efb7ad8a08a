import { execFileSync } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";

/** Makes a FIFO at `path` (`mkfifo`). */
export function makeFifo(path: string): void {
  execFileSync("mkfifo", [path]);
}

/**
 * Lets go of anything blocked opening or reading the FIFO at `path`: opens it for writing
 * without blocking and closes it at once, so a reader stuck in `open(2)` gets end of file.
 * Without it, a test that fails because code blocked on the FIFO would keep a thread of the
 * libuv pool, and the test process's exit, for good. Nothing happens when no reader waits.
 */
export function releaseFifoReaders(path: string): void {
  try {
    closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    // ENXIO: nobody is reading it; ENOENT: already removed.
  }
}
