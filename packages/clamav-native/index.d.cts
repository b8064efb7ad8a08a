/**
 * Opens `path` read-only on the libuv thread pool, without blocking on a FIFO, and keeps it only
 * when it is a regular file (O_NONBLOCK cleared, so clamd's reads through it are ordinary).
 * Resolves its descriptor, which the caller closes, and its size in bytes. Rejects with an Error
 * whose `code` is `ENOTREG` (not a regular file) or `EOPEN` (open or fstat failed).
 */
export function openRegularFile(path: string): Promise<{ fd: number; size: number }>;

/**
 * Creates a memory file (`memfd_create`) holding a copy of `bytes`, sealed against any change,
 * and returns its descriptor, which the caller closes: clamd scans it through FILDES as it scans
 * a file, without spooling a stream to a temporary file. Synchronous (memory only: keep `bytes`
 * small). Throws an Error whose `code` is `EMEMFD` when the file cannot be made.
 */
export function memoryFile(bytes: Uint8Array): number;

/**
 * Sends `zFILDES` and `fileFd` (as SCM_RIGHTS ancillary data) on `socketFd`, a connected unix
 * socket to clamd (a kept `IDSESSION` whose reading Node does), in one non-blocking `sendmsg`:
 * all of it or nothing. Synchronous; clamd's reply arrives on the socket. `fileFd` comes from
 * {@link openRegularFile}. Throws an Error whose `code` is `EAGAIN` (the socket is full; nothing
 * sent), `ENOTSENT` (another failure; nothing sent), `ESEND` (the session is closed) or
 * `EPARTIAL` (part of it sent: the session is lost).
 */
export function sendFileDescriptor(socketFd: number, fileFd: number): void;
