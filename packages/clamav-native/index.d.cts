/**
 * Opens `filePath`, connects to clamd's unix socket `socketPath`, sends `zFILDES` with the file
 * descriptor as SCM_RIGHTS ancillary data, and resolves with clamd's reply (without its NUL),
 * e.g. `"fd[10]: OK"` or `"fd[10]: Eicar-Test-Signature FOUND"`. Runs on the libuv thread pool;
 * `timeoutMs` bounds each socket read and write. Rejects with an Error whose `code` is
 * `EFILE`, `ECONNECT`, `ESEND`, `ERECV` or `ETIMEOUT`.
 */
export function scanFileDescriptor(
  socketPath: string,
  filePath: string,
  timeoutMs: number,
): Promise<string>;
