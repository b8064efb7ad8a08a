import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import {
  type Artifact,
  ArtifactTooLargeError,
  ArtifactUnavailableError,
  BackendUnavailableError,
  createScanSignal,
  EngineError,
  errorFromSignal,
  ProtocolError,
  parseOptions,
  raceSignal,
  type ScanOptions,
} from "@engine/core";
import {
  type ClamdClientOptions,
  clamdClientOptionsSchema,
  type ResolvedClamdClientOptions,
} from "./clamd-client-options.js";
import {
  ClamdConnection,
  ClamdConnectionFailure,
  type ClamdEndpoint,
  describeEndpoint,
} from "./clamd-connection.js";
import { clamdConnectionError, clamdTooLarge, clamdUnexpectedReply } from "./clamd-errors.js";
import {
  type ClamdReply,
  type ClamdStats,
  type ClamdVersion,
  parseClamdCommands,
  parseClamdReply,
  parseClamdStats,
  parseClamdVersion,
} from "./clamd-reply.js";
import { type ClamdSession, ClamdSessionPool } from "./clamd-session-pool.js";
import { chunkHeader, endOfStreamFrame } from "./instream-framing.js";

/** How a scan reached clamd. */
export type ClamdScanMode = "instream" | "path" | "fildes";

/** What {@link ClamdClient.scan} returns: clamd's verdict reply and how it was obtained. */
export interface ClamdScanOutcome {
  /** The parsed reply: `ok`, `found`, or an `error` clamd reported about the content. */
  reply: Extract<ClamdReply, { kind: "ok" | "found" | "error" }>;
  /** `instream` (streamed to clamd), `path` (clamd opened the local file) or `fildes` (we passed it open). */
  mode: ClamdScanMode;
  /** Bytes sent to clamd (0 in `path` mode). */
  bytesSent: number;
}

interface PreparedArtifact {
  mode: ClamdScanMode;
  /** Size in bytes, when known before sending. */
  size: number | undefined;
  /** The whole content of a small file, already read. */
  small?: Uint8Array;
}

interface ScanAttempt {
  started: boolean;
  finishedSending: boolean;
  bytesSent: number;
}

const probeTimeoutMs = 1000;

type FileDescriptorPassing = typeof import("@engine/clamav-native");
let fileDescriptorPassing: Promise<FileDescriptorPassing | undefined> | undefined;

/** The optional FILDES addon, loaded once; `undefined` when it is not installed or not built. */
function loadFileDescriptorPassing(): Promise<FileDescriptorPassing | undefined> {
  fileDescriptorPassing ??= import("@engine/clamav-native").catch(() => undefined);
  return fileDescriptorPassing;
}
/** A dropped upload at least this large, with clamd alive, is read as its StreamMaxLength refusal. */
const sizeRefusalFloorBytes = 1024 * 1024;
const instreamCommand = Buffer.from("zINSTREAM\0");

/**
 * A small, typed clamd client. Every call has a connect timeout, a read timeout and honours
 * an `AbortSignal` and an absolute `deadline` (the socket is destroyed). Scans run on a pool of
 * kept `IDSESSION` connections (`maxConnections`), so many small artifacts do not pay a
 * connection each; a restarted clamd is reconnected to on the next call.
 *
 * @example
 * const client = new ClamdClient({ socket: "/run/clamav/clamd.ctl" });
 * await client.ping();
 * const { reply } = await client.scan(artifactFromFile("upload.bin"));
 * await client.close();
 */
export class ClamdClient {
  /** The validated options, defaults applied. */
  readonly options: ResolvedClamdClientOptions;
  /** Where clamd is. */
  readonly endpoint: ClamdEndpoint;
  readonly #sessions: ClamdSessionPool;

  constructor(options: ClamdClientOptions = {}) {
    this.options = parseOptions(clamdClientOptionsSchema, options, {
      where: "@engine/clamav: invalid clamd client options",
      hint: "Give socket (a unix socket path) or host and port; see the @engine/clamav README.",
    });
    this.endpoint = this.options.socket
      ? { socket: this.options.socket }
      : { host: this.options.host ?? "127.0.0.1", port: this.options.port ?? 3310 };
    this.#sessions = new ClamdSessionPool(this.endpoint, this.options);
  }

  /** Connection slots in use (scans, FILDES calls), callers waiting for one, and the maximum. */
  get usage(): { inUse: number; waiting: number; max: number } {
    return this.#sessions.usage;
  }

  /** `PING`: resolves when clamd answers `PONG`, throws a typed error otherwise. */
  async ping(options: ScanOptions = {}): Promise<void> {
    const reply = await this.#command("PING", options);
    if (reply !== "PONG") throw clamdUnexpectedReply(this.endpoint, "PING", reply);
  }

  /** `VERSION`, parsed: engine version, and database version and date when there is an official database. */
  async version(options: ScanOptions = {}): Promise<ClamdVersion> {
    const reply = await this.#command("VERSION", options);
    return parseClamdVersion(reply) ?? this.#throwUnexpected("VERSION", reply);
  }

  /** `VERSIONCOMMANDS`: the commands this clamd supports (`INSTREAM`, `IDSESSION`, `FILDES`, ...). */
  async versionCommands(options: ScanOptions = {}): Promise<string[]> {
    const reply = await this.#command("VERSIONCOMMANDS", options);
    return parseClamdCommands(reply) ?? this.#throwUnexpected("VERSIONCOMMANDS", reply);
  }

  /** `STATS`: thread pool and queue figures, plus the raw text. */
  async stats(options: ScanOptions = {}): Promise<ClamdStats> {
    const reply = await this.#command("STATS", options);
    if (!reply.includes("POOLS:")) this.#throwUnexpected("STATS", reply);
    return parseClamdStats(reply);
  }

  /** `RELOAD`: asks clamd to reload its databases (it answers `RELOADING` and reloads in the background). */
  async reload(options: ScanOptions = {}): Promise<void> {
    const reply = await this.#command("RELOAD", options);
    if (reply !== "RELOADING") throw clamdUnexpectedReply(this.endpoint, "RELOAD", reply);
  }

  /**
   * Scans an artifact. Local files on a unix-socket clamd are read by clamd itself
   * (`SCAN <path>`, falling back to streaming when clamd may not read them); everything else
   * is streamed with `INSTREAM` in `chunkBytes` chunks with back-pressure, never buffered.
   *
   * Throws `ArtifactTooLargeError` when the artifact is larger than `maxStreamBytes` (before
   * sending when its size is known) or when clamd cuts the stream; `BackendUnavailableError`,
   * `ScanTimeoutError`, `ScanAbortedError` or `ProtocolError` otherwise. Never a silent "OK".
   */
  async scan(artifact: Artifact, options: ScanOptions = {}): Promise<ClamdScanOutcome> {
    using stop = createScanSignal(options);
    stop.throwIfStopped();
    const signal = stop.signal;
    const prepared = await this.#prepare(artifact, signal);
    const { size } = prepared;
    if (size !== undefined && size > this.options.maxStreamBytes)
      throw clamdTooLarge(this.options.maxStreamBytes, size);
    let mode = prepared.mode;

    if (mode === "fildes") {
      const reply = await this.#scanFileDescriptor(artifact.path as string, signal);
      if (reply) return { reply, mode, bytesSent: 0 };
      mode = "instream"; // clamd refused FILDES (an old or remote clamd): stream instead
    }
    for (let attempt = 0; ; attempt += 1) {
      const session = await this.#openSession(signal);
      const reused = session.nextId > 1;
      const progress: ScanAttempt = { started: false, finishedSending: false, bytesSent: 0 };
      try {
        const subject = mode === "path" ? resolve(artifact.path as string) : "stream";
        const text = await this.#request(session, mode, artifact, prepared, signal, progress);
        const reply = parseClamdReply(text, subject);
        this.#sessions.release(session, true);
        if (reply.kind === "error" && reply.sizeLimitExceeded)
          throw clamdTooLarge(this.options.maxStreamBytes, size, progress.bytesSent);
        if (mode === "path" && reply.kind === "error") {
          mode = "instream"; // clamd may not read this file (permissions): stream it instead
          continue;
        }
        if (reply.kind === "ok" || reply.kind === "found" || reply.kind === "error") {
          return { reply, mode, bytesSent: progress.bytesSent };
        }
        throw clamdUnexpectedReply(this.endpoint, mode === "path" ? "SCAN" : "INSTREAM", text);
      } catch (error) {
        this.#sessions.release(session, false);
        if (signal.aborted) throw errorFromSignal(signal);
        if (!(error instanceof ClamdConnectionFailure)) throw error;
        const queued = session.connection.takeQueuedReply();
        if (queued !== undefined && parseClamdReply(queued).kind === "error") {
          const reply = parseClamdReply(queued);
          if (reply.kind === "error" && reply.sizeLimitExceeded)
            throw clamdTooLarge(this.options.maxStreamBytes, size, progress.bytesSent);
        }
        const stale =
          reused && attempt === 0 && (error.kind === "closed" || error.kind === "write-failed");
        if (stale && (artifact.replayable || !progress.started)) continue; // a kept connection clamd had dropped
        throw await this.#scanFailure(error, progress, size);
      }
    }
  }

  /** Closes the kept connections. The client stays usable: the next call reconnects. */
  async close(): Promise<void> {
    this.#sessions.close();
  }

  /** Closes the kept connections (`await using client = new ClamdClient(...)`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * FILDES through the optional addon: the reply, or `undefined` when clamd answered FILDES
   * with an error (then the caller streams). Typed errors for connection problems.
   */
  async #scanFileDescriptor(
    path: string,
    signal: AbortSignal,
  ): Promise<Extract<ClamdReply, { kind: "ok" | "found" }> | undefined> {
    const native = await loadFileDescriptorPassing();
    if (!native) return undefined;
    const socket = (this.endpoint as { socket: string }).socket;
    await this.#sessions.takeSlot(signal);
    let text: string;
    try {
      // The addon holds a libuv thread and a clamd connection until clamd answers (or its read
      // timeout): the slot goes back only then, even when the caller stops waiting earlier, so
      // FILDES calls stay within maxConnections and never fill the thread pool.
      const call = native.scanFileDescriptor(socket, resolve(path), this.options.readTimeoutMs);
      call.then(
        () => this.#sessions.releaseSlot(),
        () => this.#sessions.releaseSlot(),
      );
      text = await raceSignal(call, signal);
    } catch (error) {
      if (signal.aborted || EngineError.isInstance(error))
        throw signal.aborted ? errorFromSignal(signal) : error;
      const code = (error as NodeJS.ErrnoException).code;
      const kind =
        code === "ETIMEOUT" ? "read-timeout" : code === "ECONNECT" ? "connect-failed" : "closed";
      if (code === "EFILE") {
        throw new ArtifactUnavailableError({
          message: `@engine/clamav: ${(error as Error).message}`,
          cause: error,
        });
      }
      throw clamdConnectionError(
        this.endpoint,
        new ClamdConnectionFailure(kind, (error as Error).message, { cause: error }),
        "FILDES",
      );
    }
    const reply = parseClamdReply(text);
    if (reply.kind === "ok" || reply.kind === "found") return reply;
    if (text.length === 0) {
      throw clamdConnectionError(
        this.endpoint,
        new ClamdConnectionFailure("closed", "no reply to FILDES"),
        "FILDES",
      );
    }
    return undefined;
  }

  async #command(name: string, options: ScanOptions): Promise<string> {
    using stop = createScanSignal(options);
    stop.throwIfStopped();
    let connection: ClamdConnection | undefined;
    const onAbort = (): void => connection?.destroy(errorFromSignal(stop.signal));
    stop.signal.addEventListener("abort", onAbort, { once: true });
    try {
      connection = await ClamdConnection.connect(
        this.endpoint,
        this.options.connectTimeoutMs,
        stop.signal,
      );
      await connection.write(`z${name}\0`, this.options.readTimeoutMs);
      return await connection.nextReply(this.options.readTimeoutMs);
    } catch (error) {
      if (stop.signal.aborted) throw errorFromSignal(stop.signal);
      throw clamdConnectionError(this.endpoint, error, name);
    } finally {
      stop.signal.removeEventListener("abort", onAbort);
      connection?.destroy();
    }
  }

  /**
   * Decides how to send an artifact with as few file-system trips as possible (each costs
   * ~0.1 ms on the thread pool, as much as clamd's scan of a small file): one `stat` when clamd
   * may read the file by path; otherwise one bounded read, which returns a small file whole or
   * tells that it is large.
   */
  async #prepare(artifact: Artifact, signal: AbortSignal): Promise<PreparedArtifact> {
    const path = artifact.path;
    if (
      path !== undefined &&
      this.options.scanLocalFiles &&
      "socket" in this.endpoint &&
      !/[\0\n\r]/.test(path)
    ) {
      const stats = await stat(path).catch(() => undefined); // a read error surfaces when streaming
      if (stats?.isFile()) {
        const mode =
          this.options.passFileDescriptors && (await loadFileDescriptorPassing())
            ? "fildes"
            : "path";
        return { mode, size: artifact.size ?? stats.size };
      }
    }
    if (artifact.size !== undefined || path === undefined) {
      return { mode: "instream", size: artifact.size ?? (await artifact.byteLength()) };
    }
    try {
      const small = await artifact.bytes({ signal, maxBytes: this.options.chunkBytes });
      return { mode: "instream", size: small.byteLength, small };
    } catch (error) {
      if (!ArtifactTooLargeError.isInstance(error)) throw error;
      return { mode: "instream", size: await artifact.byteLength() };
    }
  }

  /** A kept or new IDSESSION connection, its failures typed. */
  async #openSession(signal: AbortSignal): Promise<ClamdSession> {
    try {
      return await this.#sessions.acquire(signal);
    } catch (error) {
      if (signal.aborted) throw errorFromSignal(signal);
      throw clamdConnectionError(this.endpoint, error, "IDSESSION");
    }
  }

  async #request(
    session: ClamdSession,
    mode: ClamdScanMode,
    artifact: Artifact,
    { size, small }: PreparedArtifact,
    signal: AbortSignal,
    progress: ScanAttempt,
  ): Promise<string> {
    const { connection } = session;
    const id = session.nextId;
    session.nextId += 1;
    const { readTimeoutMs, chunkBytes, maxStreamBytes } = this.options;
    const onAbort = (): void => connection.destroy(errorFromSignal(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    let unsubscribe = (): void => {};
    try {
      if (mode === "path") {
        await connection.write(`zSCAN ${resolve(artifact.path as string)}\0`, readTimeoutMs);
      } else {
        progress.started = true;
        if (size !== undefined && size <= chunkBytes) {
          // Small artifacts (most uploads) go out in one write: command, one frame, end frame.
          const body = small ?? (await artifact.bytes({ signal, maxBytes: maxStreamBytes }));
          if (body.byteLength <= chunkBytes) {
            progress.bytesSent = body.byteLength;
            // An empty body gets no frame of its own: a zero-length frame IS the end frame.
            const frames =
              body.byteLength === 0
                ? [instreamCommand, endOfStreamFrame]
                : [instreamCommand, chunkHeader(body.byteLength), body, endOfStreamFrame];
            await connection.write(Buffer.concat(frames), readTimeoutMs);
            return await this.#reply(connection, id, readTimeoutMs, progress);
          }
        }
        await connection.write(instreamCommand, readTimeoutMs);
        const stream = artifact.stream({ signal });
        // A dead clamd must end the upload even while we wait for the artifact's next chunk.
        unsubscribe = connection.onFailure((failure) => stream.destroy(failure));
        for await (const chunk of stream) {
          const data = chunk as Buffer;
          for (let offset = 0; offset < data.length; offset += chunkBytes) {
            const body = data.subarray(offset, Math.min(offset + chunkBytes, data.length));
            if (progress.bytesSent + body.length > maxStreamBytes) {
              throw clamdTooLarge(
                this.options.maxStreamBytes,
                undefined,
                progress.bytesSent + body.length,
              );
            }
            // The body's write reports any failure; the header's own promise must not go unhandled.
            connection.write(chunkHeader(body.length), readTimeoutMs)?.catch(() => {});
            const pending = connection.write(body, readTimeoutMs);
            progress.bytesSent += body.length;
            if (pending) await pending;
          }
          if (connection.hasQueuedReply) break; // clamd answered early (size limit): stop sending
        }
        await connection.write(endOfStreamFrame, readTimeoutMs);
      }
      return await this.#reply(connection, id, readTimeoutMs, progress);
    } finally {
      unsubscribe();
      signal.removeEventListener("abort", onAbort);
    }
  }

  /** Waits for the reply to session request `id` and strips its prefix. */
  async #reply(
    connection: ClamdConnection,
    id: number,
    readTimeoutMs: number,
    progress: ScanAttempt,
  ): Promise<string> {
    progress.finishedSending = true;
    const reply = await connection.nextReply(readTimeoutMs);
    const prefix = /^(\d+): /.exec(reply);
    if (prefix?.[1] !== String(id)) {
      throw new ProtocolError({
        message: `@engine/clamav: clamd answered request ${prefix?.[1] ?? "(no id)"} while we waited for request ${id}: ${JSON.stringify(reply).slice(0, 200)}`,
      });
    }
    return reply.slice(prefix[0].length);
  }

  /** Maps a socket failure during a scan: a cut stream is "too large" when clamd is still alive. */
  async #scanFailure(
    failure: ClamdConnectionFailure,
    progress: ScanAttempt,
    size: number | undefined,
  ): Promise<EngineError> {
    // clamd closes the socket at StreamMaxLength, while we still send (EPIPE, a close) or after
    // the kernel took the whole upload; closing with unread data makes the kernel send a reset
    // that can discard its "size limit exceeded" reply. A PING tells a refusal (clamd alive)
    // from a crash. A drop after a small complete upload is not a size refusal.
    const dropped =
      progress.started && (failure.kind === "write-failed" || failure.kind === "closed");
    const largeEnough = !progress.finishedSending || progress.bytesSent >= sizeRefusalFloorBytes;
    if (dropped && largeEnough) {
      const alive = await this.ping({ deadline: Date.now() + probeTimeoutMs }).then(
        () => true,
        () => false,
      );
      if (alive)
        return clamdTooLarge(this.options.maxStreamBytes, size, progress.bytesSent, failure);
      return new BackendUnavailableError({
        message: `@engine/clamav: clamd at ${describeEndpoint(this.endpoint)} went away while we sent the artifact (${failure.message})`,
        hint: "Check that clamd is running (was it killed or restarted?).",
        cause: failure,
      });
    }
    return clamdConnectionError(this.endpoint, failure, "INSTREAM");
  }

  #throwUnexpected(command: string, reply: string): never {
    throw clamdUnexpectedReply(this.endpoint, command, reply);
  }
}
