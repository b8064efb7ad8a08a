import { connect, type Socket } from "node:net";
import type { DaemonGeneration } from "./daemon-generation.js";

/** Where clamd listens: a unix socket path, or a TCP host and port. */
export type ClamdEndpoint = { socket: string } | { host: string; port: number };

/** Describes an endpoint for messages: `unix:/run/clamd.sock` or `127.0.0.1:3310`. */
export function describeEndpoint(endpoint: ClamdEndpoint): string {
  return "socket" in endpoint ? `unix:${endpoint.socket}` : `${endpoint.host}:${endpoint.port}`;
}

/** Why a connection failed, before the client maps it to an engine error. */
export type ConnectionFailureKind =
  | "connect-failed"
  | "connect-timeout"
  | "read-timeout"
  | "write-failed"
  | "closed"
  | "garbage";

/** A socket-level failure of a {@link ClamdConnection}; the client turns it into an engine error. */
export class ClamdConnectionFailure extends Error {
  constructor(
    readonly kind: ConnectionFailureKind,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "ClamdConnectionFailure";
  }
}

/** A reply longer than this without a terminator is garbage, not clamd. */
const maximumReplyBytes = 1024 * 1024;
const readTimedOut = Buffer.from("COMMAND READ TIMED OUT\n");

interface Waiter {
  resolve: (reply: string) => void;
  reject: (error: Error) => void;
}

/**
 * One socket to clamd in `z` mode: writes with back-pressure, and splits what clamd sends
 * into replies (`\0`-terminated, except `COMMAND READ TIMED OUT\n`). Replies that arrive
 * while nobody waits are queued (clamd's size-limit reply arrives while we still send).
 */
export class ClamdConnection {
  readonly #socket: Socket;
  #pending: Buffer = Buffer.alloc(0);
  readonly #replies: string[] = [];
  #waiter: Waiter | undefined;
  #drainWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #failure: Error | undefined;
  #ended = false;
  readonly #failureListeners = new Set<(failure: Error) => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (data: Buffer) => this.#onData(data));
    socket.on("end", () => {
      this.#ended = true;
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      const kind =
        error.code === "EPIPE" || error.code === "ECONNRESET" ? "write-failed" : "closed";
      this.#fail(
        new ClamdConnectionFailure(kind, `${error.code ?? "socket error"}: ${error.message}`, {
          cause: error,
        }),
      );
    });
    socket.on("close", () =>
      this.#fail(new ClamdConnectionFailure("closed", "clamd closed the connection")),
    );
    socket.on("drain", () => {
      const waiters = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const waiter of waiters) waiter.resolve();
    });
  }

  /**
   * Connects within `connectTimeoutMs`; rejects with a {@link ClamdConnectionFailure}
   * (`connect-failed`, `connect-timeout`) or the signal's reason.
   */
  static connect(
    endpoint: ClamdEndpoint,
    connectTimeoutMs: number,
    signal?: AbortSignal,
    generation?: DaemonGeneration,
  ): Promise<ClamdConnection> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const socket =
        "socket" in endpoint ? connect(endpoint.socket) : connect(endpoint.port, endpoint.host);
      socket.setNoDelay(true);
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        socket.removeListener("error", onError);
        socket.removeListener("connect", onConnect);
      };
      const onConnect = (): void => {
        cleanup();
        const connection = new ClamdConnection(socket);
        generation?.opened();
        resolve(connection);
      };
      const onError = (error: NodeJS.ErrnoException): void => {
        cleanup();
        socket.destroy();
        reject(
          new ClamdConnectionFailure(
            "connect-failed",
            `${error.code ?? "error"}: ${error.message}`,
            { cause: error },
          ),
        );
      };
      const onAbort = (): void => {
        cleanup();
        socket.destroy();
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        cleanup();
        socket.destroy();
        reject(
          new ClamdConnectionFailure(
            "connect-timeout",
            `no connection within ${connectTimeoutMs} ms`,
          ),
        );
      }, connectTimeoutMs);
      socket.once("connect", onConnect);
      socket.once("error", onError);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Connects (see {@link ClamdConnection.connect}) and starts an `IDSESSION` on the connection;
   * a connection whose `IDSESSION` cannot be written is closed before the failure is thrown.
   */
  static async session(
    endpoint: ClamdEndpoint,
    connectTimeoutMs: number,
    writeTimeoutMs: number,
    signal?: AbortSignal,
    generation?: DaemonGeneration,
  ): Promise<ClamdConnection> {
    const connection = await ClamdConnection.connect(
      endpoint,
      connectTimeoutMs,
      signal,
      generation,
    );
    try {
      const pending = connection.write("zIDSESSION\0", writeTimeoutMs);
      if (pending) await pending;
    } catch (error) {
      connection.destroy();
      throw error;
    }
    return connection;
  }

  /** Ends an `IDSESSION`: `END` when the socket is still usable (not waited for), then closes it. */
  endSession(writeTimeoutMs: number): void {
    if (this.usable) this.write("zEND\0", writeTimeoutMs)?.catch(() => {});
    this.destroy();
  }

  /**
   * Whether this connection keeps the process alive: yes while a request uses it, no while it
   * waits idle for reuse (a kept connection must not hold a finished command's exit for its idle
   * timeout).
   */
  holdProcess(hold: boolean): void {
    if (hold) this.#socket.ref();
    else this.#socket.unref();
  }

  /**
   * The socket's file descriptor, for a native send beside Node's own writes (FILDES on a kept
   * session): only while Node has nothing of its own waiting to be written on it (bytes of both
   * would interleave), else `undefined`.
   */
  get quietDescriptor(): number | undefined {
    const socket = this.#socket as Socket & { _handle?: { fd?: unknown } };
    if (!this.usable || socket.connecting || socket.writableLength > 0) return undefined;
    const fd = socket._handle?.fd;
    return typeof fd === "number" && fd >= 0 ? fd : undefined;
  }

  /** False once the socket failed, was closed by either side, or clamd half-closed it. */
  get usable(): boolean {
    return this.#failure === undefined && !this.#ended && !this.#socket.destroyed;
  }

  /**
   * Writes bytes; returns `undefined` when the socket took them, or a promise that settles on
   * `drain`. When clamd reads nothing for `stallTimeoutMs`, it rejects with `read-timeout`.
   */
  write(data: Uint8Array | string, stallTimeoutMs: number): Promise<void> | undefined {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#socket.write(data)) return undefined;
    return this.#drained(stallTimeoutMs);
  }

  /**
   * Writes `pieces` as one `writev` (the socket is corked around them: an `INSTREAM` chunk's
   * header and body cost one system call, not two); returns as {@link write} does.
   */
  writeAll(pieces: readonly Uint8Array[], stallTimeoutMs: number): Promise<void> | undefined {
    if (this.#failure) return Promise.reject(this.#failure);
    const socket = this.#socket;
    let accepted = true;
    socket.cork();
    try {
      for (const piece of pieces) accepted = socket.write(piece);
    } finally {
      socket.uncork();
    }
    return accepted ? undefined : this.#drained(stallTimeoutMs);
  }

  /** Settles on the socket's next `drain`, or rejects after `stallTimeoutMs` of no reading. */
  #drained(stallTimeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.destroy(
          new ClamdConnectionFailure("read-timeout", `clamd read nothing for ${stallTimeoutMs} ms`),
        );
      }, stallTimeoutMs);
      this.#drainWaiters.push({
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
  }

  /** Calls `listener` once if the connection fails; returns a function that unsubscribes. */
  onFailure(listener: (failure: Error) => void): () => void {
    if (this.#failure) {
      listener(this.#failure);
      return () => {};
    }
    this.#failureListeners.add(listener);
    return () => this.#failureListeners.delete(listener);
  }

  /** True when a reply arrived that nobody has taken yet. */
  get hasQueuedReply(): boolean {
    return this.#replies.length > 0;
  }

  /** A reply already received and not yet taken, without waiting. */
  takeQueuedReply(): string | undefined {
    return this.#replies.shift();
  }

  /**
   * The next reply, within `readTimeoutMs` of inactivity. Rejects with a
   * {@link ClamdConnectionFailure} (`read-timeout`, `closed`, `garbage`).
   */
  nextReply(readTimeoutMs: number): Promise<string> {
    const queued = this.#replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(
          new ClamdConnectionFailure(
            "read-timeout",
            `clamd sent no reply within ${readTimeoutMs} ms`,
          ),
        );
      }, readTimeoutMs);
      this.#waiter = {
        resolve: (reply) => {
          clearTimeout(timer);
          resolve(reply);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  /** Closes the socket at once; pending waits reject with `failure` (or `closed`). */
  destroy(failure?: Error): void {
    if (failure) this.#fail(failure);
    this.#socket.destroy();
  }

  #onData(data: Buffer): void {
    this.#pending = this.#pending.length === 0 ? data : Buffer.concat([this.#pending, data]);
    for (;;) {
      const prefixLength =
        /^\d{1,10}: /.exec(this.#pending.subarray(0, 12).toString("latin1"))?.[0].length ?? 0;
      if (
        this.#pending.subarray(prefixLength).subarray(0, readTimedOut.length).equals(readTimedOut)
      ) {
        this.#deliver(
          this.#pending.subarray(0, prefixLength + readTimedOut.length - 1).toString("utf8"),
        );
        this.#pending = this.#pending.subarray(prefixLength + readTimedOut.length);
        continue;
      }
      const end = this.#pending.indexOf(0);
      if (end === -1) break;
      this.#deliver(this.#pending.subarray(0, end).toString("utf8"));
      this.#pending = this.#pending.subarray(end + 1);
    }
    if (this.#pending.length > maximumReplyBytes) {
      this.destroy(
        new ClamdConnectionFailure(
          "garbage",
          `over ${maximumReplyBytes} bytes without a reply terminator`,
        ),
      );
    }
  }

  #deliver(reply: string): void {
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve(reply);
    } else {
      this.#replies.push(reply);
    }
  }

  #fail(failure: Error): void {
    // A partial reply without terminator before close is still worth reading (a stray "n"-mode answer).
    if (!this.#failure && this.#pending.length > 0) {
      this.#deliver(this.#pending.toString("utf8"));
      this.#pending = Buffer.alloc(0);
    }
    const first = this.#failure === undefined;
    this.#failure ??= failure;
    if (first) {
      for (const listener of this.#failureListeners) listener(this.#failure);
      this.#failureListeners.clear();
    }
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
    const drainWaiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const drainWaiter of drainWaiters) drainWaiter.reject(this.#failure);
  }
}
