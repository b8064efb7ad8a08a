import { closeSync } from "node:fs";
import {
  ArtifactUnavailableError,
  EngineError,
  errorFromSignal,
  ProtocolError,
} from "@engine/core";
import { ClamdConnectionFailure, type ClamdEndpoint } from "./clamd-connection.js";
import { clamdConnectionError, clamdTooLarge } from "./clamd-errors.js";
import { type ClamdReply, parseClamdReply } from "./clamd-reply.js";
import {
  type ClamdSession,
  type ClamdSessionPool,
  readSessionReply,
} from "./clamd-session-pool.js";

type FileDescriptorPassing = typeof import("@engine/clamav-native");
let fileDescriptorPassing: Promise<FileDescriptorPassing | undefined> | undefined;

/**
 * The optional FILDES addon (`@engine/clamav-native`), loaded once; `undefined` when it is not
 * installed, not built, or too old to have `sendRegularFile`, `memoryFile` and `sendFileDescriptor`.
 */
export function loadFileDescriptorPassing(): Promise<FileDescriptorPassing | undefined> {
  fileDescriptorPassing ??= import("@engine/clamav-native").then(
    (native) =>
      typeof native.sendRegularFile === "function" &&
      typeof native.sendFileDescriptor === "function" &&
      typeof native.memoryFile === "function"
        ? native
        : undefined,
    () => undefined,
  );
  return fileDescriptorPassing;
}

/** The file a FILDES scan passes, and the limits it is held to. */
export interface FildesFile {
  /**
   * A local file by its path (the addon opens it and keeps it only when it is a regular file),
   * or content held in memory, passed as a sealed memory file.
   */
  source: { path: string } | { memory: Uint8Array };
  /** Larger than this (the client's `maxStreamBytes`) is `ArtifactTooLargeError`, unsent. */
  maxBytes: number;
  /** How long clamd may take to answer, in ms. */
  readTimeoutMs: number;
}

/**
 * `FILDES` through the optional addon: opens the file (or makes a memory file of the bytes) and
 * passes the descriptor to clamd on a kept `IDSESSION` (see {@link fildesOnSession}). Resolves
 * clamd's verdict reply, or `undefined` when the addon is missing, the session could not take the
 * descriptor, or clamd answered FILDES with an error (then the caller streams it). Connection
 * problems are typed errors; a file that cannot be opened, or is not a regular file, is
 * `ArtifactUnavailableError`; one over `maxBytes` by its descriptor's size is
 * `ArtifactTooLargeError`, unsent; one whose size says 0 is streamed.
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

/**
 * FILDES on a kept `IDSESSION` of the pool, as `clamdscan --multiscan --fdpass` does: the addon
 * opens the file, sends `zFILDES` with its descriptor on the session's socket in one non-blocking
 * `sendmsg` and closes it, in one trip to the thread pool (a regular file only), and the reply
 * comes back on the session like any other. No connection per file, no thread of the pool held
 * while clamd scans, nothing that may block on a slow mount run on the event loop, and the
 * session's daemon generation holds for every call on it. Resolves clamd's reply (its request id
 * stripped), or `undefined` when the session could not take the call (Node still writing on it,
 * its socket full, a send refused) and sent nothing: the caller streams the file instead. A
 * session clamd closed (a kept one it had dropped, or one lost meanwhile) is replaced once.
 */
async function fildesOnSession(
  native: FileDescriptorPassing,
  sessions: ClamdSessionPool,
  endpoint: ClamdEndpoint,
  { source, maxBytes, readTimeoutMs }: FildesFile,
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
      if (signal.aborted) throw errorFromSignal(signal); // before the listener was added
      const id = await sendOnSession(native, session, source, maxBytes);
      if (id === undefined) {
        reusable = true;
        return undefined;
      }
      const text = await readSessionReply(connection, id, readTimeoutMs);
      reusable = true;
      return text;
    } catch (error) {
      if (signal.aborted) throw errorFromSignal(signal);
      if (EngineError.isInstance(error)) {
        reusable = connection.usable && !(error instanceof ProtocolError);
        throw error;
      }
      if (!(error instanceof ClamdConnectionFailure)) throw error;
      const stale = error.kind === "closed" || error.kind === "write-failed";
      const beforeSending = (error as { beforeSending?: boolean }).beforeSending === true;
      if (stale && (reused || beforeSending) && attempt === 0) continue;
      throw clamdConnectionError(endpoint, error, "FILDES");
    } finally {
      signal.removeEventListener("abort", onAbort);
      sessions.release(session, reusable);
    }
  }
}

/**
 * Sends `source` with FILDES on `session` (see {@link sendFile} and {@link sendMemory}); resolves
 * the request's id, or `undefined` when nothing was sent and the content should be streamed.
 * Throws `ArtifactUnavailableError`, `ArtifactTooLargeError` (over `maxBytes`), or a
 * {@link ClamdConnectionFailure} when the session is closed (`beforeSending` when nothing went).
 */
async function sendOnSession(
  native: FileDescriptorPassing,
  session: ClamdSession,
  source: FildesFile["source"],
  maxBytes: number,
): Promise<number | undefined> {
  const { connection } = session;
  const socket = connection.quietDescriptor;
  if (socket === undefined) {
    if (connection.usable) return undefined; // Node is still writing on it: stream instead
    throw Object.assign(new ClamdConnectionFailure("closed", "clamd closed the session"), {
      beforeSending: true,
    });
  }
  const sent =
    "memory" in source
      ? sendMemory(native, socket, source.memory)
      : await sendFile(native, socket, source.path, maxBytes);
  if (!sent) return undefined;
  // One request at a time per session: no other call used an id since this one was read.
  const id = session.nextId;
  session.nextId += 1;
  return id;
}

/**
 * The file at `path` opened, sent and closed on the thread pool; false when nothing was sent and
 * it should be streamed (a size of 0 among them: clamd reads a descriptor by its size, and a
 * procfs file says 0 though it has content). Its descriptor's size is what clamd would read: a
 * file grown past `maxBytes` since it was listed is `ArtifactTooLargeError`, unsent.
 */
async function sendFile(
  native: FileDescriptorPassing,
  socket: number,
  path: string,
  maxBytes: number,
): Promise<boolean> {
  try {
    await native.sendRegularFile(socket, path, maxBytes);
    return true;
  } catch (caught) {
    const error = caught as NodeJS.ErrnoException & { size?: number };
    switch (error.code) {
      case "EOPEN":
      case "ENOTREG":
        throw new ArtifactUnavailableError({
          message: `@engine/clamav: ${error.message}`,
          cause: error,
        });
      case "ETOOLARGE":
        throw clamdTooLarge(maxBytes, error.size ?? maxBytes + 1);
      case "EEMPTY":
        return false; // size 0: clamd would read nothing through it (procfs has content)
      case "EINVAL":
        throw error; // a call the addon refused: a bug here, not a connection failure
      default:
        return sendFailure(error);
    }
  }
}

/**
 * `bytes` in a sealed memory file, sent on the calling thread (no mount to wait for) and closed;
 * false when no memory file could be made or nothing was sent: they are streamed instead.
 */
function sendMemory(native: FileDescriptorPassing, socket: number, bytes: Uint8Array): boolean {
  let fd: number;
  try {
    fd = native.memoryFile(bytes);
  } catch {
    return false; // no memory file here (memfd refused)
  }
  try {
    native.sendFileDescriptor(socket, fd);
    return true;
  } catch (error) {
    return sendFailure(error as NodeJS.ErrnoException);
  } finally {
    closeSync(fd); // clamd holds its own descriptor
  }
}

/** A failed send: false when nothing went (the session is still in step), else the session is lost. */
function sendFailure(error: NodeJS.ErrnoException): false {
  if (error.code === "EAGAIN" || error.code === "ENOTSENT" || error.code === "ECANCELED")
    return false;
  throw new ClamdConnectionFailure("write-failed", error.message, { cause: error });
}
