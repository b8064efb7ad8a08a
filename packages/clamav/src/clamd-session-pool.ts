import { ConcurrencyLimit, errorFromSignal, ProtocolError } from "@engine/core";
import type { ResolvedClamdClientOptions } from "./clamd-client-options.js";
import { ClamdConnection, type ClamdEndpoint } from "./clamd-connection.js";
import { DaemonGeneration } from "./daemon-generation.js";

/** One kept `IDSESSION` connection: its socket, the next request id, its idle timer. */
export interface ClamdSession {
  connection: ClamdConnection;
  nextId: number;
  idleTimer?: NodeJS.Timeout;
}

/** The client options a session pool uses (milliseconds; see `ClamdClientOptions`). */
export type ClamdSessionLimits = Pick<
  ResolvedClamdClientOptions,
  "maxConnections" | "connectTimeoutMs" | "readTimeoutMs" | "idleTimeoutMs"
>;

/**
 * The clamd client's connections: at most `maxConnections` in use at once (every scan takes a
 * slot), `IDSESSION` sessions kept idle for `idleTimeoutMs` and reused, a dropped
 * one never handed out again. Connection failures are thrown as they come (the client types
 * them); a stopped signal as its engine error.
 */
export class ClamdSessionPool {
  readonly #endpoint: ClamdEndpoint;
  readonly #options: ClamdSessionLimits;
  readonly #slots: ConcurrencyLimit;
  readonly #idle: ClamdSession[] = [];
  readonly #busy = new Set<ClamdSession>();

  /** The scan connections this pool's client opened: see `daemonGeneration`. */
  readonly generation: DaemonGeneration;

  constructor(
    endpoint: ClamdEndpoint,
    options: ClamdSessionLimits,
    generation = new DaemonGeneration(),
  ) {
    this.#endpoint = endpoint;
    this.#options = options;
    this.generation = generation;
    this.#slots = new ConcurrencyLimit({
      concurrency: options.maxConnections,
      what: "clamd connections",
    });
  }

  /** Connection slots in use, callers waiting for one, and the maximum. */
  get usage(): { inUse: number; waiting: number; max: number } {
    return {
      inUse: this.#slots.running,
      waiting: this.#slots.waiting,
      max: this.#options.maxConnections,
    };
  }

  /** A kept or new `IDSESSION` connection and a slot with it; never for a signal already aborted. */
  async acquire(signal: AbortSignal): Promise<ClamdSession> {
    if (signal.aborted) throw errorFromSignal(signal);
    try {
      await this.#slots.acquire(signal);
    } catch {
      throw errorFromSignal(signal);
    }
    try {
      if (signal.aborted) throw errorFromSignal(signal);
      for (let session = this.#idle.pop(); session; session = this.#idle.pop()) {
        clearTimeout(session.idleTimer);
        if (session.connection.usable) {
          session.connection.holdProcess(true);
          this.#busy.add(session);
          return session;
        }
        session.connection.destroy();
      }
      const connection = await ClamdConnection.session(
        this.#endpoint,
        this.#options.connectTimeoutMs,
        this.#options.readTimeoutMs,
        signal,
        this.generation,
      );
      const session: ClamdSession = { connection, nextId: 1 };
      this.#busy.add(session);
      return session;
    } catch (error) {
      this.#slots.release();
      if (signal.aborted) throw errorFromSignal(signal);
      throw error; // typed by the client (clamdConnectionError)
    }
  }

  /** Returns a session: kept for reuse when it is still usable and `reusable`, else closed. */
  release(session: ClamdSession, reusable: boolean): void {
    if (!this.#busy.delete(session)) return;
    this.#slots.release();
    if (reusable && session.connection.usable) {
      session.idleTimer = setTimeout(() => {
        const index = this.#idle.indexOf(session);
        if (index !== -1) this.#idle.splice(index, 1);
        this.#endSession(session);
      }, this.#options.idleTimeoutMs);
      session.idleTimer.unref();
      session.connection.holdProcess(false); // idle: it must not keep the process alive
      this.#idle.push(session);
    } else {
      session.connection.destroy();
    }
  }

  #endSession(session: ClamdSession): void {
    clearTimeout(session.idleTimer);
    session.connection.endSession(this.#options.readTimeoutMs);
  }

  /** Closes the idle sessions; the pool stays usable (the next call connects). */
  close(): void {
    for (const session of this.#idle.splice(0)) this.#endSession(session);
  }
}

/**
 * Waits for the reply to session request `id` and strips its `<id>: ` prefix; a reply to another
 * request is a `ProtocolError` (one request is outstanding per session at a time).
 */
export async function readSessionReply(
  connection: ClamdConnection,
  id: number,
  readTimeoutMs: number,
): Promise<string> {
  const reply = await connection.nextReply(readTimeoutMs);
  const prefix = /^(\d+): /.exec(reply);
  if (prefix?.[1] !== String(id)) {
    throw new ProtocolError({
      message: `@engine/clamav: clamd answered request ${prefix?.[1] ?? "(no id)"} while we waited for request ${id}: ${JSON.stringify(reply).slice(0, 200)}`,
    });
  }
  return reply.slice(prefix[0].length);
}
