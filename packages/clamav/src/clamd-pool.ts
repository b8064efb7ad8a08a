import {
  type Artifact,
  BackendUnavailableError,
  InvalidOptionsError,
  type ScanContext,
  type ScanOptions,
} from "@engine/core";
import { ClamdClient, type ClamdScanOutcome } from "./clamd-client.js";
import type { ClamdClientOptions, ResolvedClamdClientOptions } from "./clamd-client-options.js";
import {
  ClamdConnectionFailure,
  type ClamdEndpoint,
  describeEndpoint,
} from "./clamd-connection.js";
import type { ClamdStats, ClamdVersion } from "./clamd-reply.js";

/**
 * What the ClamAV scanner needs from clamd: one `ClamdClient`, or a `ClamdPool` of several
 * daemons behind the same methods.
 */
export interface ClamdService {
  readonly options: ResolvedClamdClientOptions;
  readonly usage: { inUse: number; waiting: number; max: number };
  ping(options?: ScanOptions): Promise<void>;
  version(options?: ScanOptions): Promise<ClamdVersion>;
  versionCommands(options?: ScanOptions): Promise<string[]>;
  stats(options?: ScanOptions): Promise<ClamdStats>;
  reload(options?: ScanOptions): Promise<void>;
  /** Scans with the caller's `{ signal, deadline }` or a `defineScanner` scan context. */
  scan(artifact: Artifact, options?: ScanOptions | ScanContext): Promise<ClamdScanOutcome>;
  close(): Promise<void>;
}

/** One daemon of a pool, as `/readyz` shows it. */
export interface ClamdHostState {
  /** `unix:/run/clamav/clamd.ctl` or `10.0.0.5:3310`. */
  endpoint: string;
  /** False after a connection failure, until a PING succeeds again. */
  healthy: boolean;
  /** Connection slots in use on it. */
  inUse: number;
  /** Scans it answered. */
  scans: number;
  /** Failures in a row; each doubles the wait before the next try (1 s to 10 s). */
  failures: number;
  /** When a failed host is tried again (epoch ms), while unhealthy. */
  retryAt?: number;
}

/**
 * Parses a host entry of `CLAMD_HOSTS` / `hosts`: `host:port`, `[v6]:port`, or a unix socket
 * path (`/run/clamav/clamd.ctl`, or `unix:/path`).
 */
export function parseClamdHost(entry: string): ClamdEndpoint {
  const text = entry.trim();
  if (text.startsWith("unix:")) return { socket: text.slice("unix:".length) };
  if (text.startsWith("/")) return { socket: text };
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text);
  const port = Number(match?.[2]);
  if (!match?.[1] || !(port >= 1 && port <= 65535)) {
    throw new InvalidOptionsError({
      message: `@engine/clamav: ${JSON.stringify(entry)} is not a clamd address`,
      hint: "Write host:port (10.0.0.5:3310), [v6]:port, or a unix socket path (/run/clamav/clamd.ctl).",
    });
  }
  return { host: match[1], port };
}

interface Host {
  client: ClamdClient;
  endpoint: string;
  healthy: boolean;
  scans: number;
  failures: number;
  retryAt: number;
  checkedAt: number;
  /** Scans sent to it and not finished (counted from the choice, before a connection is taken). */
  pending: number;
  /** Bumped at each failure: a health check started before it does not undo it. */
  generation: number;
}

const retryDelay = { firstMs: 1_000, maximumMs: 10_000 };
/** True when the daemon could not be reached at all (the artifact never got to it). */
function isConnectFailure(error: unknown): boolean {
  const cause = (error as { cause?: unknown })?.cause;
  return (
    cause instanceof ClamdConnectionFailure &&
    (cause.kind === "connect-failed" || cause.kind === "connect-timeout")
  );
}

/** How often healthy hosts are pinged (and failed ones due for a retry), in ms. */
const healthCheckEveryMs = 5_000;

/**
 * A pool of clamd daemons for scale-out: each scan goes to the healthy host with the fewest
 * scans in hand (least busy); a host whose connection fails is marked down, the scan is retried on
 * another host (when the artifact can be read again), and the failed host is tried again
 * after a backoff (1 s doubling to 10 s) by a PING. Commands (`version`, `stats`) go to a
 * healthy host; `reload` to all. `hosts()` reports each host's state.
 *
 * @example
 * const pool = new ClamdPool(["10.0.0.5:3310", "10.0.0.6:3310", "/run/clamav/clamd.ctl"]);
 * const { reply } = await pool.scan(artifactFromFile("upload.bin"));
 */
export class ClamdPool implements ClamdService {
  readonly #hosts: Host[];
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param hosts at least one entry (see {@link parseClamdHost})
   * @param options the connection options of each host's client (timeouts, `maxConnections`
   *   per host, ...), without `socket`/`host`/`port`
   */
  constructor(
    hosts: readonly string[],
    options: Omit<ClamdClientOptions, "socket" | "host" | "port"> = {},
  ) {
    if (hosts.length === 0) {
      throw new InvalidOptionsError({
        message: "@engine/clamav: a clamd pool needs at least one host",
        hint: "Give hosts: ['10.0.0.5:3310', '/run/clamav/clamd.ctl'].",
      });
    }
    this.#hosts = hosts.map((entry) => {
      const endpoint = parseClamdHost(entry);
      return {
        client: new ClamdClient({ ...options, ...endpoint }),
        endpoint: describeEndpoint(endpoint),
        healthy: true,
        scans: 0,
        failures: 0,
        retryAt: 0,
        checkedAt: 0,
        pending: 0,
        generation: 0,
      };
    });
  }

  /** The first host's options (every host has the same ones). */
  get options(): ResolvedClamdClientOptions {
    return (this.#hosts[0] as Host).client.options;
  }

  /** The clients of the hosts, in the order given (to probe each, e.g. `checkClamdAlerts`). */
  get clients(): readonly ClamdClient[] {
    return this.#hosts.map((host) => host.client);
  }

  /** Connection slots in use and waiting, summed over the hosts. */
  get usage(): { inUse: number; waiting: number; max: number } {
    return this.#hosts.reduce(
      (sum, host) => {
        const usage = host.client.usage;
        return {
          inUse: sum.inUse + usage.inUse,
          waiting: sum.waiting + usage.waiting,
          max: sum.max + usage.max,
        };
      },
      { inUse: 0, waiting: 0, max: 0 },
    );
  }

  /** Each host's state: healthy, connections in use, scans, failures and next retry. */
  hosts(): ClamdHostState[] {
    return this.#hosts.map((host) => ({
      endpoint: host.endpoint,
      healthy: host.healthy,
      inUse: host.client.usage.inUse,
      scans: host.scans,
      failures: host.failures,
      ...(host.healthy ? {} : { retryAt: host.retryAt }),
    }));
  }

  /** Scans on the least busy healthy host, failing over to the others on connection failures. */
  async scan(
    artifact: Artifact,
    options: ScanOptions | ScanContext = {},
  ): Promise<ClamdScanOutcome> {
    this.#startHealthChecks();
    const tried = new Set<Host>();
    let lastError: unknown;
    for (let host = this.#choose(tried); host; host = this.#choose(tried)) {
      tried.add(host);
      host.pending += 1;
      try {
        const outcome = await host.client.scan(artifact, options);
        this.#succeeded(host);
        host.scans += 1;
        return outcome;
      } catch (error) {
        if (!BackendUnavailableError.isInstance(error)) throw error; // the artifact's fault, not the host's
        this.#failed(host);
        lastError = error;
        // Another daemon gets the artifact only when this one could not be reached at all: a
        // daemon that died while it had the artifact may have died of it, and would take the
        // next one down with it. A stream cannot be sent twice anyway.
        if (!artifact.replayable || !isConnectFailure(error)) break;
      } finally {
        host.pending -= 1;
      }
    }
    throw new BackendUnavailableError({
      message: `@engine/clamav: no clamd of the pool could scan the artifact (${this.#hosts.map((host) => `${host.endpoint}${host.healthy ? "" : " down"}`).join(", ")})`,
      hint: "Check the clamd daemons of CLAMD_HOSTS; failed ones are retried with backoff.",
      cause: lastError,
    });
  }

  /** PING: resolves when at least one host answers. */
  async ping(options: ScanOptions = {}): Promise<void> {
    await this.#command((client) => client.ping(options));
  }

  version(options: ScanOptions = {}): Promise<ClamdVersion> {
    return this.#command((client) => client.version(options));
  }

  versionCommands(options: ScanOptions = {}): Promise<string[]> {
    return this.#command((client) => client.versionCommands(options));
  }

  stats(options: ScanOptions = {}): Promise<ClamdStats> {
    return this.#command((client) => client.stats(options));
  }

  /** `RELOAD` on every host; fails when none could reload. */
  async reload(options: ScanOptions = {}): Promise<void> {
    const outcomes = await Promise.allSettled(
      this.#hosts.map((host) => host.client.reload(options)),
    );
    const reloaded = outcomes.filter((outcome) => outcome.status === "fulfilled").length;
    if (reloaded === 0) throw (outcomes[0] as PromiseRejectedResult).reason;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await Promise.all(this.#hosts.map((host) => host.client.close()));
  }

  /**
   * The healthy host with the fewest scans in hand, or a failed one whose retry is due; when
   * none is, the failed one due first (a pool of one is never refused without a try).
   */
  #choose(tried: ReadonlySet<Host>): Host | undefined {
    const now = Date.now();
    const untried = this.#hosts.filter((host) => !tried.has(host));
    const candidates = untried.filter((host) => host.healthy || host.retryAt <= now);
    if (candidates.length === 0 && tried.size === 0)
      return untried.reduce<Host | undefined>(
        (first, host) => (!first || host.retryAt < first.retryAt ? host : first),
        undefined,
      );
    return candidates.reduce<Host | undefined>((best, host) => {
      if (!best) return host;
      if (host.healthy !== best.healthy) return host.healthy ? host : best;
      return host.pending < best.pending ? host : best;
    }, undefined);
  }

  async #command<T>(run: (client: ClamdClient) => Promise<T>): Promise<T> {
    let lastError: unknown;
    for (const host of [...this.#hosts].sort((a, b) => Number(b.healthy) - Number(a.healthy))) {
      try {
        const value = await run(host.client);
        this.#succeeded(host);
        return value;
      } catch (error) {
        if (BackendUnavailableError.isInstance(error)) this.#failed(host);
        lastError = error;
      }
    }
    throw lastError;
  }

  #succeeded(host: Host): void {
    host.healthy = true;
    host.failures = 0;
  }

  #failed(host: Host): void {
    host.generation += 1;
    // Scans in flight when a host dies all fail at once: one failure, not one per scan.
    if (!host.healthy && Date.now() < host.retryAt) return;
    host.healthy = false;
    host.failures += 1;
    host.retryAt =
      Date.now() + Math.min(retryDelay.firstMs * 2 ** (host.failures - 1), retryDelay.maximumMs);
  }

  /**
   * Pings failed hosts when their retry is due, and healthy ones every 5 s to notice a failure
   * before a scan does.
   */
  #startHealthChecks(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const host of this.#hosts) {
        const due = host.healthy ? now - host.checkedAt >= healthCheckEveryMs : host.retryAt <= now;
        if (!due) continue;
        host.checkedAt = now;
        const generation = host.generation;
        host.client.ping({ deadline: now + 2_000 }).then(
          () => {
            if (host.generation === generation) this.#succeeded(host); // not a stale answer
          },
          (error: unknown) => {
            // A busy daemon may be slow to answer a PING: only a refused connection is a failure.
            if (BackendUnavailableError.isInstance(error)) this.#failed(host);
          },
        );
      }
    }, retryDelay.firstMs);
    this.#timer.unref();
  }
}
