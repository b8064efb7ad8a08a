import { BackendUnavailableError, raceSignal } from "@engine/core";
import { type ClamdAlertProbe, checkClamdAlerts } from "./clamd-alert-check.js";
import type { ClamdClient } from "./clamd-client.js";

/** Longest one daemon's alert probe may take, in ms. */
const probeTimeoutMs = 30_000;

/** What was found of one daemon's alert settings, in one generation. */
interface DaemonCheck {
  /** `daemonGeneration` when it was found. */
  generation: number;
  /** When, in epoch ms. */
  checkedAt: number;
  passed: boolean;
  /** True when the probe could not reach the daemon (nothing was learnt). */
  unreachable: boolean;
  probes: ClamdAlertProbe[];
}

/** What the guard knows of the daemons' alert settings now. */
export interface ClamdAlertStatus {
  /**
   * `verified`: every daemon reached raised both alerts in its current generation; `failing`: one
   * answers OK for what it could not inspect (its clean answers are refused); `unchecked`:
   * not probed yet in its current generation (the next clean answer waits for the probe).
   */
  state: "verified" | "failing" | "unchecked";
  /** For `failing`: each failing probe's answer and the clamd.conf fix. */
  problems: string[];
}

/**
 * Keeps a clamd's alert settings (`AlertEncrypted*`, `AlertExceedsMax`) verified for as long
 * as its clean answers are trusted: a clamd restarted with another clamd.conf (Debian's default
 * after an upgrade) answers `OK` for an encrypted or too-deep archive. Each daemon is probed
 * with `checkClamdAlerts` once per generation (`ClamdClient.daemonGeneration`: every new scan
 * connection, so every restart, begins one; kept sessions are reused) and at least every
 * `maxAgeMs`; a clean answer waits for the probe of the daemon's current generation, and is
 * refused (`BackendUnavailableError`) when a daemon fails it. One client per daemon: behind
 * one address, a probe may reach another daemon than a scan did (use a pool's clients).
 */
export class ClamdAlertGuard {
  readonly #clients: readonly ClamdClient[];
  readonly #maxAgeMs: number;
  readonly #checks = new Map<ClamdClient, DaemonCheck>();
  readonly #probing = new Map<ClamdClient, Promise<DaemonCheck>>();

  /**
   * @param clients the daemons (one client, or a pool's `clients`)
   * @param maxAgeMs how long a probe's finding stands within one generation, in ms
   */
  constructor(clients: readonly ClamdClient[], maxAgeMs: number) {
    this.#clients = clients;
    this.#maxAgeMs = maxAgeMs;
  }

  /**
   * Resolves once every reachable daemon passed the probe in its current generation (probing those
   * not checked yet, each once however many scans wait); rejects with the signal's reason when
   * it fires first, and with `BackendUnavailableError` naming the missing settings when a daemon
   * fails.
   */
  async confirm(signal: AbortSignal): Promise<void> {
    const checks = await raceSignal(
      Promise.all(this.#clients.map((client) => this.#current(client))),
      signal,
    );
    const failing = checks.filter(
      (check, index) => !check.passed && !this.#answeredNothingUnchecked(index, check),
    );
    if (failing.length === 0) return;
    const problems = failing.flatMap(problemsOf);
    throw new BackendUnavailableError({
      message: `@engine/clamav: clamd answers OK for what it cannot inspect, so its clean answer is not trusted: ${problems.join("; ")}`,
      hint: "Set AlertEncrypted, AlertEncryptedArchive, AlertEncryptedDoc and AlertExceedsMax to yes in clamd.conf and restart clamd.",
      publicMessage: "clamd lacks its alert settings: its clean answers are not trusted",
    });
  }

  /** The last findings (never waits); starts a probe in the background where one is due. */
  status(): ClamdAlertStatus {
    const checks = this.#clients.map((client) => {
      const known = this.#checks.get(client);
      if (!this.#stands(client, known)) this.#current(client).catch(() => {});
      return this.#stands(client, known) ? known : undefined;
    });
    const failing = checks.filter(
      (check): check is DaemonCheck => check !== undefined && !check.passed,
    );
    if (failing.length > 0) return { state: "failing", problems: failing.flatMap(problemsOf) };
    return { state: checks.every(Boolean) ? "verified" : "unchecked", problems: [] };
  }

  /**
   * True for a daemon the probe could not reach that cannot have given an unchecked answer:
   * it was never reached (a pool's daemon down since start), or its current generation is the one it
   * last passed the probe in (it went away after that; its next one is probed).
   */
  #answeredNothingUnchecked(index: number, check: DaemonCheck): boolean {
    const client = this.#clients[index];
    if (!check.unreachable || !client) return false;
    if (client.daemonGeneration === 0) return true;
    const known = this.#checks.get(client);
    return known?.passed === true && known.generation === client.daemonGeneration;
  }

  #stands(client: ClamdClient, check: DaemonCheck | undefined): check is DaemonCheck {
    return (
      check !== undefined &&
      check.generation === client.daemonGeneration &&
      Date.now() - check.checkedAt < this.#maxAgeMs
    );
  }

  #current(client: ClamdClient): Promise<DaemonCheck> {
    const known = this.#checks.get(client);
    if (this.#stands(client, known)) return Promise.resolve(known);
    let probing = this.#probing.get(client);
    if (!probing) {
      probing = this.#probe(client).finally(() => this.#probing.delete(client));
      this.#probing.set(client, probing);
    }
    return probing;
  }

  async #probe(client: ClamdClient): Promise<DaemonCheck> {
    const probes = await checkClamdAlerts(client, { deadline: Date.now() + probeTimeoutMs });
    const check: DaemonCheck = {
      // Read after the probe: its connection is the daemon's current generation.
      generation: client.daemonGeneration,
      checkedAt: Date.now(),
      passed: probes.every((probe) => probe.passed),
      unreachable: probes.every((probe) => probe.answer.startsWith("could not scan")),
      probes,
    };
    if (!check.unreachable) this.#checks.set(client, check);
    return check;
  }
}

function problemsOf(check: DaemonCheck): string[] {
  return check.probes
    .filter((probe) => !probe.passed)
    .map((probe) => `${probe.answer} for the ${probe.probe} probe (${probe.fix})`);
}
