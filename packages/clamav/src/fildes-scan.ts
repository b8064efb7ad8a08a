import { closeSync, constants, fstatSync, open } from "node:fs";
import { ArtifactUnavailableError, errorFromSignal } from "@engine/core";
import { ClamdConnectionFailure, type ClamdEndpoint } from "./clamd-connection.js";
import { clamdConnectionError, clamdTooLarge } from "./clamd-errors.js";
import { type ClamdReply, parseClamdReply } from "./clamd-reply.js";
import { type ClamdSessionPool, readSessionReply } from "./clamd-session-pool.js";

type FileDescriptorPassing = typeof import("@engine/clamav-native");
let fileDescriptorPassing: Promise<FileDescriptorPassing | undefined> | undefined;

/** The optional FILDES addon (`@engine/clamav-native`), loaded once; `undefined` when it is not installed or not built. */
export function loadFileDescriptorPassing(): Promise<FileDescriptorPassing | undefined> {
  fileDescriptorPassing ??= import("@engine/clamav-native").catch(() => undefined);
  return fileDescriptorPassing;
}

/** The file a FILDES scan passes, and the limits it is held to. */
export interface FildesFile {
  /** Its path: a regular file when it was listed or looked up. */
  path: string;
  /** Larger than this (the client's `maxStreamBytes`) is `ArtifactTooLargeError`, unsent. */
  maxBytes: number;
  /** How long clamd may take to answer, in ms. */
  readTimeoutMs: number;
}

/**
 * `FILDES` through the optional addon: opens `file.path` and passes the descriptor to clamd on a kept
 * `IDSESSION` (see {@link fildesOnSession}). Resolves clamd's verdict reply, or `undefined` when
 * the addon is missing, the session could not take the descriptor, or clamd answered FILDES with
 * an error (then the caller streams it). Connection problems are typed errors; a file that cannot
 * be opened, or is no longer the regular file it was when listed or looked up, is
 * `ArtifactUnavailableError`; one grown past `maxBytes` since (its descriptor's size) is
 * `ArtifactTooLargeError`, unsent.
 */
export async function scanByFileDescriptor(
  sessions: ClamdSessionPool,
  endpoint: ClamdEndpoint,
  file: FildesFile,
  signal: AbortSignal,
): Promise<Extract<ClamdReply, { kind: "ok" | "found" }> | undefined> {
  const native = await loadFileDescriptorPassing();
  if (!native) return undefined;
  const text = await fildesOnSession(native, sessions, endpoint, file, signal);
  if (text === undefined) return undefined;
  const reply = parseClamdReply(text);
  if (reply.kind === "ok" || reply.kind === "found") return reply;
  if (text.length === 0) {
    throw clamdConnectionError(
      endpoint,
      new ClamdConnectionFailure("closed", "no reply to FILDES"),
      "FILDES",
    );
  }
  return undefined;
}

/** Opens `path` read-only without blocking (a FIFO put in a file's place must not hang). */
function openForClamd(path: string): Promise<number> {
  return new Promise((resolveOpen, reject) => {
    open(path, constants.O_RDONLY | constants.O_NONBLOCK, (error, fd) => {
      if (error) {
        reject(
          new ArtifactUnavailableError({
            message: `@engine/clamav: cannot open ${path}: ${error.message}`,
            cause: error,
          }),
        );
      } else resolveOpen(fd);
    });
  });
}

/** The addon's failures that mean the session's socket is gone (nothing, or not all, was sent). */
const sessionSendFailures = new Set(["ESEND", "EPARTIAL"]);

/**
 * FILDES on a kept `IDSESSION` of the pool, as `clamdscan --multiscan --fdpass` does: the file is
 * opened here, the addon sends `zFILDES` with its descriptor on the session's socket in one
 * non-blocking `sendmsg`, and the reply comes back on the session like any other. No connection
 * per file, no thread of the pool held while clamd scans, and the session's daemon generation
 * holds for every call on it. Resolves clamd's reply (its request id stripped), or `undefined`
 * when the session could not take the call (Node still writing on it, or its socket full) and
 * sent nothing: the caller streams the file instead. A kept session clamd had dropped is replaced
 * once (the file is opened again).
 */
async function fildesOnSession(
  native: FileDescriptorPassing,
  sessions: ClamdSessionPool,
  endpoint: ClamdEndpoint,
  { path, maxBytes, readTimeoutMs }: FildesFile,
  signal: AbortSignal,
): Promise<string | undefined> {
  for (let attempt = 0; ; attempt += 1) {
    const session = await sessions.acquire(signal).catch((error: unknown) => {
      if (signal.aborted) throw errorFromSignal(signal);
      throw clamdConnectionError(endpoint, error, "IDSESSION");
    });
    const { connection } = session;
    const reused = session.nextId > 1;
    let reusable = false;
    const onAbort = (): void => connection.destroy(errorFromSignal(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const file = await openForClamd(path);
      let id: number;
      try {
        // The descriptor's own status (no trip to the thread pool) is what clamd will read: the
        // file may have been swapped or have grown since it was listed.
        const status = fstatSync(file);
        if (!status.isFile()) {
          reusable = true;
          throw new ArtifactUnavailableError({
            message: `@engine/clamav: not a regular file (any more): ${path}`,
          });
        }
        if (status.size > maxBytes) {
          reusable = true;
          throw clamdTooLarge(maxBytes, status.size);
        }
        const socket = connection.quietDescriptor;
        if (socket === undefined) {
          reusable = true;
          return undefined;
        }
        id = session.nextId;
        native.sendFileDescriptor(socket, file);
        session.nextId += 1;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        reusable = !sessionSendFailures.has(code ?? "");
        if (code === "EAGAIN") return undefined;
        throw error;
      } finally {
        closeSync(file); // a read-only descriptor: no trip to the thread pool for it
      }
      const text = await readSessionReply(connection, id, readTimeoutMs);
      reusable = true;
      return text;
    } catch (error) {
      if (signal.aborted) throw errorFromSignal(signal);
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EFILE") {
        throw new ArtifactUnavailableError({
          message: `@engine/clamav: ${(error as Error).message}: ${path}`,
          cause: error,
        });
      }
      const failure = sessionSendFailures.has(code ?? "")
        ? new ClamdConnectionFailure("write-failed", (error as Error).message, { cause: error })
        : error;
      const stale =
        failure instanceof ClamdConnectionFailure &&
        (failure.kind === "closed" || failure.kind === "write-failed");
      if (stale && reused && attempt === 0) continue; // a kept session clamd had dropped
      if (failure instanceof ClamdConnectionFailure)
        throw clamdConnectionError(endpoint, failure, "FILDES");
      throw failure;
    } finally {
      signal.removeEventListener("abort", onAbort);
      sessions.release(session, reusable);
    }
  }
}
