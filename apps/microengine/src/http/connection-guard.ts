import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Logger } from "pino";
import type { EngineMetrics } from "../operations/metrics.js";

/**
 * How long a new connection (or one whose last response just finished) is ranked after every
 * older slow connection, in ms: it has not had time to send its request yet, so its byte rate
 * says nothing. Default of {@link ConnectionGuardOptions.graceMs}.
 */
const defaultGraceMs = 1_000;
/** Longest time one ranking of the evictable connections is used before it is made again, in ms. */
const rankingLifetimeMs = 1_000;
/** Shortest time between two warnings about the connection cap, in ms. */
const warningIntervalMs = 60_000;

/** Why a connection was closed to make room for a new one. */
export type EvictionReason = "idle" | "slow";

/** One request on a connection, until its response has been sent. */
interface Exchange {
  request: IncomingMessage;
  response: ServerResponse;
}

/** What the guard knows of one open connection. */
interface ConnectionState {
  socket: Socket;
  /** Requests whose response has not finished (more than one when the client pipelines). */
  exchanges: Set<Exchange>;
  /** Responses finished on this connection. */
  served: number;
  /**
   * When the connection opened or last had nothing in flight (its last response finished), in
   * ms since the epoch: what it received since then, head and body, over the time since then
   * is its byte rate.
   */
  since: number;
  /** `socket.bytesRead` at `since`. */
  bytesAtSince: number;
}

/** A connection that may be evicted, and why, as it stood when it was ranked. */
interface Candidate {
  state: ConnectionState;
  reason: EvictionReason;
  /** Its `since` then: when it changed, so did its place in the order. */
  since: number;
}

/** What {@link guardConnections} needs. */
export interface ConnectionGuardOptions {
  /** Open connections at most (HTTP_MAX_CONNECTIONS); at least 1. */
  maxConnections: number;
  /** Where evictions and refusals are counted. */
  metrics: Pick<EngineMetrics, "httpConnectionsEvicted" | "httpConnectionsRefused">;
  /** Warned at the first eviction or refusal, then at most once a minute with the counts. */
  logger: Pick<Logger, "warn">;
  /** See {@link defaultGraceMs}; in ms, default 1000. */
  graceMs?: number;
}

/**
 * Why `state` may be evicted, or undefined when it may not: a connection with a request whose
 * head and body have arrived and whose response the engine has not finished (a webhook being
 * verified and accepted, a scan running) is never evicted.
 */
function evictionReason(state: ConnectionState): EvictionReason | undefined {
  for (const { request, response } of state.exchanges)
    if (request.complete && !response.writableEnded) return undefined;
  const quiet = state.socket.bytesRead === state.bytesAtSince;
  return state.exchanges.size === 0 && state.served > 0 && quiet ? "idle" : "slow";
}

/**
 * The evictable connections in the order they go: idle keep-alive connections, the longest
 * idle first; then those still sending a request (or that never sent one, or do not read
 * their response): those that started more than `graceMs` ago first, the lowest byte rate
 * first, then the newer ones, oldest first.
 */
function rankForEviction(
  connections: Iterable<ConnectionState>,
  now: number,
  graceMs: number,
): Candidate[] {
  const ranked: Array<Candidate & { tier: number; rate: number }> = [];
  for (const state of connections) {
    const reason = evictionReason(state);
    if (!reason) continue;
    const elapsedMs = now - state.since;
    const tier = reason === "idle" ? 0 : elapsedMs >= graceMs ? 1 : 2;
    const rate =
      tier === 1 ? (state.socket.bytesRead - state.bytesAtSince) / Math.max(elapsedMs, 1) : 0;
    ranked.push({ state, reason, since: state.since, tier, rate });
  }
  return ranked.sort(
    (left, right) => left.tier - right.tier || left.rate - right.rate || left.since - right.since,
  );
}

/**
 * The order in which the `open` connections make room at the cap: one ranking (see
 * {@link rankForEviction}) is used for up to {@link rankingLifetimeMs}, so a flood of new
 * connections does not rank every open one each time.
 */
function createEvictionOrder(open: ReadonlyMap<Socket, ConnectionState>, graceMs: number) {
  let ranking: Candidate[] = [];
  let rankedAt = Number.NEGATIVE_INFINITY;
  let cursor = 0;

  /**
   * The next connection of the current ranking still open and as it was ranked. One that
   * changed since (it started a request, or finished one) waits for the next ranking.
   */
  const nextCandidate = (): Candidate | undefined => {
    while (cursor < ranking.length) {
      const candidate = ranking[cursor++] as Candidate;
      const { state } = candidate;
      if (open.get(state.socket) !== state || state.since !== candidate.since) continue;
      if (evictionReason(state) === candidate.reason) return candidate;
    }
    return undefined;
  };
  return {
    /** The connection to close next to make room at `now`, or undefined when none may be. */
    next(now: number): Candidate | undefined {
      const candidate = now - rankedAt < rankingLifetimeMs ? nextCandidate() : undefined;
      if (candidate) return candidate;
      ranking = rankForEviction(open.values(), now, graceMs);
      rankedAt = now;
      cursor = 0;
      return nextCandidate();
    },
  };
}

/**
 * Warns at the first eviction or refusal, then once per interval with the counts while the
 * cap keeps being hit: a flood makes a few lines, never one per socket.
 */
function createCapWarnings(logger: Pick<Logger, "warn">, maxConnections: number) {
  const counts = { idle: 0, slow: 0, refused: 0 };
  let timer: NodeJS.Timeout | undefined;
  const report = (): boolean => {
    if (counts.idle + counts.slow + counts.refused === 0) return false;
    logger.warn(
      {
        maxConnections,
        evicted: { idle: counts.idle, slow: counts.slow },
        refused: counts.refused,
      },
      `HTTP_MAX_CONNECTIONS (${maxConnections}) reached: ${counts.idle} idle and ${counts.slow} slow connections evicted, ${counts.refused} refused since the last warning (at most one a minute)`,
    );
    counts.idle = counts.slow = counts.refused = 0;
    return true;
  };
  const rearm = () => {
    timer = setTimeout(() => {
      timer = undefined;
      if (report()) rearm();
    }, warningIntervalMs);
    timer.unref();
  };
  return {
    note(kind: EvictionReason | "refused"): void {
      counts[kind] += 1;
      if (timer) return;
      report();
      rearm();
    },
    stop(): void {
      clearTimeout(timer);
    },
  };
}

/** Tracks `request` on its connection until its response finishes (or the connection closes). */
function trackExchange(state: ConnectionState, request: IncomingMessage, response: ServerResponse) {
  const exchange: Exchange = { request, response };
  state.exchanges.add(exchange);
  const done = () => {
    if (!state.exchanges.delete(exchange)) return;
    state.served += 1;
    if (state.exchanges.size > 0) return;
    state.since = Date.now();
    state.bytesAtSince = state.socket.bytesRead;
  };
  response.once("finish", done);
  response.once("close", done);
}

/**
 * Holds `server` to `maxConnections` open connections without letting a flood of sockets lock
 * clients out (audit finding 11). Replaces `server.maxConnections`, which refuses every new
 * connection at the cap. When a connection arrives at the cap, one is closed to make room, in
 * this order: an idle keep-alive connection (no request in flight), the longest idle first;
 * else one still sending its request head or body, or that never sent a byte, or that does
 * not read its response, the slowest first (see {@link rankForEviction}); connections opened
 * within `graceMs` go last, so a client that sends its request promptly gets through. A
 * connection whose request has fully arrived and is being handled is never evicted; only when
 * every connection is such is the new one refused (closed at once).
 */
export function guardConnections(server: Server, options: ConnectionGuardOptions): void {
  const { maxConnections, metrics } = options;
  const graceMs = options.graceMs ?? defaultGraceMs;
  const warnings = createCapWarnings(options.logger, maxConnections);
  const open = new Map<Socket, ConnectionState>();
  const evictionOrder = createEvictionOrder(open, graceMs);
  const makeRoom = (now: number): boolean => {
    const candidate = evictionOrder.next(now);
    if (!candidate) return false;
    open.delete(candidate.state.socket);
    candidate.state.socket.destroy();
    metrics.httpConnectionsEvicted.inc({ reason: candidate.reason });
    warnings.note(candidate.reason);
    return true;
  };

  server.on("connection", (socket: Socket) => {
    const now = Date.now();
    if (open.size >= maxConnections && !makeRoom(now)) {
      socket.destroy();
      metrics.httpConnectionsRefused.inc();
      warnings.note("refused");
      return;
    }
    const state: ConnectionState = {
      socket,
      exchanges: new Set(),
      served: 0,
      since: now,
      bytesAtSince: 0,
    };
    open.set(socket, state);
    socket.once("close", () => {
      if (open.get(socket) === state) open.delete(socket);
    });
  });
  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const state = open.get(request.socket);
    if (state) trackExchange(state, request, response);
  });
  server.once("close", () => warnings.stop());
}
