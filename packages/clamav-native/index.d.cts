/**
 * Sends `zFILDES` and `fileFd` (as SCM_RIGHTS ancillary data) on `socketFd`, a connected unix
 * socket to clamd (a kept `IDSESSION` whose reading Node does), in one non-blocking `sendmsg`:
 * all of it or nothing. Synchronous; clamd's reply arrives on the socket. Throws an Error whose
 * `code` is `EFILE` (fileFd is not a regular file; nothing sent), `EAGAIN` (the socket is full;
 * nothing sent), `ESEND` (the socket failed) or `EPARTIAL` (part of it sent: the session is lost).
 */
export function sendFileDescriptor(socketFd: number, fileFd: number): void;
