import { resolve } from "node:path";
import {
  type Artifact,
  createScanSignal,
  errorFromSignal,
  isScanContext,
  parseOptions,
  type ScanContext,
  type ScanOptions,
} from "@engine/core";
import {
  type ClamdClientOptions,
  clamdClientOptionsSchema,
  type ResolvedClamdClientOptions,
} from "./clamd-client-options.js";
import { ClamdConnection, ClamdConnectionFailure, type ClamdEndpoint } from "./clamd-connection.js";
import {
  clamdConnectionError,
  clamdScanFailure,
  clamdTooLarge,
  clamdUnexpectedReply,
} from "./clamd-errors.js";
import {
  type ClamdReply,
  type ClamdStats,
  type ClamdVersion,
  parseClamdCommands,
  parseClamdReply,
  parseClamdStats,
  parseClamdVersion,
} from "./clamd-reply.js";
import { type ClamdScanMode, chooseSendMode, type SendPlan } from "./clamd-send-mode.js";
import { type ClamdSession, ClamdSessionPool, readSessionReply } from "./clamd-session-pool.js";
import { scanByFileDescriptor } from "./fildes-scan.js";
import { type InstreamProgress, writeInstream } from "./instream-writer.js";

export type { ClamdScanMode } from "./clamd-send-mode.js";

/** What {@link ClamdClient.scan} returns: clamd's verdict reply and how it was obtained. */
export interface ClamdScanOutcome {
  /** The parsed reply: `ok`, `found`, or an `error` clamd reported about the content. */
  reply: Extract<ClamdReply, { kind: "ok" | "found" | "error" }>;
  /** `instream` (streamed to clamd), `path` (clamd opened the local file) or `fildes` (we passed it open). */
  mode: ClamdScanMode;
  /** Bytes sent to clamd (0 in `path` and `fildes` mode). */
  bytesSent: number;
}

/** How long the PING that tells a size refusal from a dead clamd may take, in ms. */
const probeTimeoutMs = 1000;

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

  /**
   * What the client's scans may have been talking to: it grows by one with every scan
   * connection the client opens (a session; kept sessions are reused, FILDES goes on them too). A
   * restart of clamd, which may bring another clamd.conf, drops every connection, so what
   * `checkClamdAlerts` found holds while this number stays the same. Several daemons behind one
   * address each need their own client (`ClamdPool`): a probe may reach another one.
   */
  get daemonGeneration(): number {
    return this.#sessions.generation.current;
  }

  /** Connection slots in use (one per scan), callers waiting for one, and the maximum. */
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
   * Scans an artifact. How it is sent is chosen per artifact (see `scanLocalFiles`,
   * `passFileDescriptors`): a local file on a unix-socket clamd is passed open (`FILDES`) or
   * read by clamd itself (`SCAN <path>`), falling back to streaming when clamd may not read it;
   * everything else is streamed with `INSTREAM` in `chunkBytes` chunks with back-pressure,
   * never buffered whole.
   *
   * `options` is a caller's `{ signal, deadline }`, or the `ScanContext` a scanner built with
   * `defineScanner` hands its `scan`: its signal already fires at the deadline, so the client
   * uses it as it is instead of building a second one (an object of that shape made elsewhere
   * is treated as `{ signal, deadline }`).
   *
   * Throws `ArtifactTooLargeError` when the artifact is larger than `maxStreamBytes` (before
   * sending when its size is known) or when clamd cuts the stream; `BackendUnavailableError`,
   * `ScanTimeoutError`, `ScanAbortedError` or `ProtocolError` otherwise. Never a silent "OK".
   */
  async scan(
    artifact: Artifact,
    options: ScanOptions | ScanContext = {},
  ): Promise<ClamdScanOutcome> {
    if (isScanContext(options)) {
      if (options.signal.aborted) throw errorFromSignal(options.signal);
      return this.#scan(artifact, options.signal);
    }
    using stop = createScanSignal(options);
    stop.throwIfStopped();
    // (awaited here: `using` disposes of the signal when this function returns)
    return await this.#scan(artifact, stop.signal);
  }

  async #scan(artifact: Artifact, signal: AbortSignal): Promise<ClamdScanOutcome> {
    const plan = await chooseSendMode(artifact, this.endpoint, this.options, signal);
    const { size } = plan;
    if (size !== undefined && size > this.options.maxStreamBytes)
      throw clamdTooLarge(this.options.maxStreamBytes, size);
    let mode = plan.mode;

    if (mode === "fildes") {
      // (chooseSendMode picks FILDES on a unix socket only)
      const reply = await scanByFileDescriptor(
        this.#sessions,
        this.endpoint,
        {
          source: plan.memory ? { memory: plan.memory } : { path: artifact.path as string },
          maxBytes: this.options.maxStreamBytes,
          readTimeoutMs: this.options.readTimeoutMs,
        },
        signal,
      );
      if (reply) return { reply, mode, bytesSent: 0 };
      mode = "instream"; // clamd refused FILDES, or the session could not take it: stream instead
      plan.small ??= plan.memory; // the content in hand: one write when it fits a chunk
    }
    for (let attempt = 0; ; attempt += 1) {
      const session = await this.#openSession(signal);
      const reused = session.nextId > 1;
      const progress: InstreamProgress = { started: false, finishedSending: false, bytesSent: 0 };
      try {
        const subject = mode === "path" ? resolve(artifact.path as string) : "stream";
        const text = await this.#request(session, mode, artifact, plan, signal, progress);
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
        if (queued !== undefined) {
          const reply = parseClamdReply(queued);
          if (reply.kind === "error" && reply.sizeLimitExceeded)
            throw clamdTooLarge(this.options.maxStreamBytes, size, progress.bytesSent);
        }
        const stale =
          reused && attempt === 0 && (error.kind === "closed" || error.kind === "write-failed");
        if (stale && (artifact.replayable || !progress.started)) continue; // a kept connection clamd had dropped
        throw await clamdScanFailure(
          this.endpoint,
          error,
          progress,
          size,
          this.options.maxStreamBytes,
          () =>
            this.ping({ deadline: Date.now() + probeTimeoutMs }).then(
              () => true,
              () => false,
            ),
        );
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

  async #command(name: string, options: ScanOptions): Promise<string> {
    using stop = createScanSignal(options);
    stop.throwIfStopped();
    let connection: ClamdConnection | undefined;
    const onAbort = (): void => connection?.destroy(errorFromSignal(stop.signal));
    stop.signal.addEventListener("abort", onAbort, { once: true });
    try {
      // (Not counted in daemonGeneration: a command answers no scan, and a PING now and then
      // must not make every idle daemon look new.)
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

  /** A kept or new IDSESSION connection, its failures typed. */
  async #openSession(signal: AbortSignal): Promise<ClamdSession> {
    try {
      return await this.#sessions.acquire(signal);
    } catch (error) {
      if (signal.aborted) throw errorFromSignal(signal);
      throw clamdConnectionError(this.endpoint, error, "IDSESSION");
    }
  }

  /** Sends one scan request on a session (`SCAN <path>` or an `INSTREAM` upload) and reads its reply. */
  async #request(
    session: ClamdSession,
    mode: ClamdScanMode,
    artifact: Artifact,
    plan: SendPlan,
    signal: AbortSignal,
    progress: InstreamProgress,
  ): Promise<string> {
    const { connection } = session;
    const id = session.nextId;
    session.nextId += 1;
    const { readTimeoutMs } = this.options;
    const onAbort = (): void => connection.destroy(errorFromSignal(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      if (mode === "path") {
        await connection.write(`zSCAN ${resolve(artifact.path as string)}\0`, readTimeoutMs);
      } else {
        await writeInstream(connection, artifact, plan, this.options, signal, progress);
      }
      return await readSessionReply(connection, id, readTimeoutMs);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  #throwUnexpected(command: string, reply: string): never {
    throw clamdUnexpectedReply(this.endpoint, command, reply);
  }
}
