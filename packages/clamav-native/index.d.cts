/**
 * The whole FILDES of a local file, in one trip to the libuv thread pool: opens `path` read-only
 * without blocking on a FIFO, keeps it only when it is a regular file of at most `maxBytes` bytes
 * (its descriptor's size: what clamd will read), clears O_NONBLOCK on it so that clamd's reads are
 * ordinary, sends `zFILDES` with it on `socketFd` (a connected unix socket to clamd, a kept
 * `IDSESSION` whose reading Node does, and on which Node has nothing waiting to be written) in one
 * non-blocking `sendmsg`, all of it or nothing, and closes it (clamd holds its own). The send goes
 * through a duplicate of `socketFd` made when it is called, so the socket may be closed meanwhile.
 * Resolves the file's size in bytes; clamd's reply arrives on the socket. Rejects, when nothing
 * was sent, with an Error whose `code` is `EOPEN` (open or fstat failed), `ENOTREG` (not a
 * regular file), `EEMPTY` (its size is 0: clamd would read nothing through it, though procfs and
 * sysfs files that say so have content; stream it instead), `ETOOLARGE` (with its `size`),
 * `EAGAIN` (the socket is full), `ENOTSENT` (another failure) or `ECANCELED` (cancelled before
 * it ran); with `ESEND` when the session is closed, `EPARTIAL` when part of it went (the session
 * is lost). Throws `ENOTSENT` when the socket cannot be duplicated (out of descriptors) or the
 * work cannot be queued, and a `TypeError` (`EINVAL`) for arguments it cannot use.
 */
export function sendRegularFile(socketFd: number, path: string, maxBytes: number): Promise<number>;

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
 * all of it or nothing. Synchronous: for a memory file from {@link memoryFile} (a file on a
 * mount goes by {@link sendRegularFile}). clamd's reply arrives on the socket. Throws an Error
 * whose `code` is `EAGAIN` (the socket is full; nothing sent), `ENOTSENT` (another failure;
 * nothing sent), `ESEND` (the session is closed) or `EPARTIAL` (part of it sent: the session is
 * lost).
 */
export function sendFileDescriptor(socketFd: number, fileFd: number): void;
