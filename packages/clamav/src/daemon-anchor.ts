import { setImmediate as nextTurn } from "node:timers/promises";
import { raceSignal } from "@engine/core";
import { ClamdConnection, type ClamdEndpoint } from "./clamd-connection.js";
import type { DaemonGeneration } from "./daemon-generation.js";

/**
 * One kept connection that ties FILDES calls to the daemon generation they run in.
 *
 * Each FILDES call opens a connection of its own (the addon passes the descriptor on it). Counted
 * as a new generation each, they made the alert guard probe clamd again after every call (two
 * archive scans per file: a directory scan spent a third more clamd CPU and three times the
 * time). On a unix socket, which FILDES needs, one path is one daemon at a time: clamd refuses to
 * start on a socket another clamd still answers on (systemd stops the old one before it starts the
 * new), and a daemon that stops closes every connection to it at once. So a FILDES call made
 * while this anchor, opened before it, is still open after it (one turn of the event loop later,
 * so a close that already happened is seen) reached the anchor's daemon: it joins the anchor's
 * generation. When the anchor is lost during the call, a new generation begins (the guard probes
 * again before a clean answer stands); a new anchor begins one too, as any new connection does.
 * The anchor is an idle `IDSESSION`, closed `idleTimeoutMs` after its last call (before clamd's
 * own `IdleTimeout`, 30 s by default). Under steady FILDES load nothing is sent on it, so clamd
 * closes it at its `IdleTimeout`: the calls then running begin a new generation and the guard
 * probes once more (at most one probe per `IdleTimeout`, against one per file before). Left out: someone deleting a live clamd's socket file and
 * starting another clamd on the path while the first still runs.
 */
export class DaemonAnchor {
  readonly #endpoint: ClamdEndpoint;
  readonly #generation: DaemonGeneration;
  readonly #connectTimeoutMs: number;
  readonly #idleTimeoutMs: number;
  #connection: ClamdConnection | undefined;
  #opening: Promise<ClamdConnection> | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  #lastUse = 0;
  #calls = 0;

  constructor(
    endpoint: ClamdEndpoint,
    generation: DaemonGeneration,
    limits: { connectTimeoutMs: number; idleTimeoutMs: number },
  ) {
    this.#endpoint = endpoint;
    this.#generation = generation;
    this.#connectTimeoutMs = limits.connectTimeoutMs;
    this.#idleTimeoutMs = limits.idleTimeoutMs;
  }

  /**
   * Starts `start` (one FILDES call) within the anchor's generation, once the anchor is open
   * (opening it first when there is none: a new generation), and resolves what it resolves. The
   * call counts as a live connection until it settles; when the anchor was lost by then, a new
   * generation begins before its answer is handed back. The caller stops waiting at `signal`
   * (the call itself goes on to its own end). Anchor failures reject as
   * {@link ClamdConnection.connect} does; `start` is not called then.
   */
  async run<T>(signal: AbortSignal, start: () => Promise<T>): Promise<T> {
    const anchor = await this.#open(signal);
    this.#calls += 1;
    anchor.holdProcess(true);
    const ended = this.#generation.joined();
    let call: Promise<T>;
    try {
      call = start();
    } catch (error) {
      call = Promise.reject(error); // counted, then uncounted, like any call that fails
    }
    const settled = call
      .then(
        () => {},
        () => {},
      )
      .then(async () => {
        ended();
        this.#calls -= 1;
        if (this.#calls === 0) anchor.holdProcess(false); // idle: it must not keep the process alive
        this.#lastUse = performance.now();
        await nextTurn(); // a close of the anchor that already happened is seen by now
        if (!anchor.usable) {
          if (this.#connection === anchor) this.#connection = undefined;
          this.#generation.begin();
        }
        this.#scheduleIdleClose();
      });
    const result = await raceSignal(call, signal);
    await settled;
    return result;
  }

  /** Closes the anchor; the next call opens another. */
  close(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.endSession(this.#connectTimeoutMs);
  }

  async #open(signal: AbortSignal): Promise<ClamdConnection> {
    if (this.#connection?.usable) return this.#connection;
    // One opening for every call that waits (bounded by the connect timeout); each caller
    // stops waiting at its own signal.
    this.#opening ??= (async () => {
      const connection = await ClamdConnection.session(
        this.#endpoint,
        this.#connectTimeoutMs,
        this.#connectTimeoutMs,
        undefined,
        this.#generation,
      );
      this.#connection?.destroy();
      this.#connection = connection;
      return connection;
    })().finally(() => {
      this.#opening = undefined;
    });
    return raceSignal(this.#opening, signal);
  }

  /** One timer for all calls: it closes the anchor once no call ran for `idleTimeoutMs`. */
  #scheduleIdleClose(): void {
    if (this.#idleTimer !== undefined) return;
    const check = (): void => {
      this.#idleTimer = undefined;
      if (this.#connection === undefined) return;
      const idleFor = performance.now() - this.#lastUse;
      if (this.#calls === 0 && idleFor >= this.#idleTimeoutMs) {
        this.close();
        return;
      }
      this.#idleTimer = setTimeout(check, Math.max(1, this.#idleTimeoutMs - idleFor));
      // Not work in flight: an idle connection's end, so it does not hold the process open.
      this.#idleTimer.unref();
    };
    this.#idleTimer = setTimeout(check, this.#idleTimeoutMs);
    this.#idleTimer.unref();
  }
}
