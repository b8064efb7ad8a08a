import { resolve } from "node:path";
import { ArtifactUnavailableError, EngineError, errorFromSignal } from "@engine/core";
import { ClamdConnectionFailure, type ClamdEndpoint } from "./clamd-connection.js";
import { clamdConnectionError } from "./clamd-errors.js";
import { type ClamdReply, parseClamdReply } from "./clamd-reply.js";
import type { ClamdSessionPool } from "./clamd-session-pool.js";

type FileDescriptorPassing = typeof import("@engine/clamav-native");
let fileDescriptorPassing: Promise<FileDescriptorPassing | undefined> | undefined;

/** The optional FILDES addon (`@engine/clamav-native`), loaded once; `undefined` when it is not installed or not built. */
export function loadFileDescriptorPassing(): Promise<FileDescriptorPassing | undefined> {
  fileDescriptorPassing ??= import("@engine/clamav-native").catch(() => undefined);
  return fileDescriptorPassing;
}

/**
 * `FILDES` through the optional addon: opens `path` and passes the descriptor to clamd over
 * its unix socket. Resolves clamd's verdict reply, or `undefined` when clamd answered FILDES
 * with an error or the addon is missing (then the caller streams). Connection problems are
 * typed errors; a file that cannot be opened is `ArtifactUnavailableError`.
 */
export async function scanByFileDescriptor(
  sessions: ClamdSessionPool,
  endpoint: ClamdEndpoint & { socket: string },
  path: string,
  readTimeoutMs: number,
  signal: AbortSignal,
): Promise<Extract<ClamdReply, { kind: "ok" | "found" }> | undefined> {
  const native = await loadFileDescriptorPassing();
  if (!native) return undefined;
  await sessions.takeSlot(signal);
  let text: string;
  let started = false;
  try {
    // The addon holds a libuv thread and a clamd connection until clamd answers (or its read
    // timeout): the slot goes back only then, even when the caller stops waiting earlier, so
    // FILDES calls stay within maxConnections and never fill the thread pool.
    // The addon's connection joins the generation of the kept anchor connection
    // (daemonGeneration: see DaemonAnchor).
    text = await sessions.anchor.run(signal, () => {
      started = true;
      const call = native.scanFileDescriptor(endpoint.socket, resolve(path), readTimeoutMs);
      const settled = (): void => sessions.releaseSlot();
      call.then(settled, settled);
      return call;
    });
  } catch (error) {
    if (!started) sessions.releaseSlot(); // the anchor could not be opened
    if (signal.aborted) throw errorFromSignal(signal);
    if (EngineError.isInstance(error)) throw error;
    if (error instanceof ClamdConnectionFailure)
      throw clamdConnectionError(endpoint, error, "FILDES"); // the anchor's
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EFILE") {
      throw new ArtifactUnavailableError({
        message: `@engine/clamav: ${(error as Error).message}`,
        cause: error,
      });
    }
    const kind =
      code === "ETIMEOUT" ? "read-timeout" : code === "ECONNECT" ? "connect-failed" : "closed";
    throw clamdConnectionError(
      endpoint,
      new ClamdConnectionFailure(kind, (error as Error).message, { cause: error }),
      "FILDES",
    );
  }
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
