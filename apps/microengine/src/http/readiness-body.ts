import type { BackendReadiness } from "../operations/readiness.js";
import { type SignatureCoverage, testSignaturesNote } from "../protocol/coverage.js";

/** A queue's state on `/readyz`: whether it answers (or takes jobs), and its job counts by state. */
export interface QueueReadiness {
  ok: boolean;
  jobs: Record<string, number>;
  /** serve: the workers connected to the queue (absent until read). */
  workers?: number;
  /** serve: set while jobs wait and no worker is connected (readiness stays 200). */
  warning?: string;
}

/** What a role (serve, a queue worker) adds to the backends' readiness on its `/readyz`. */
export interface RoleReadiness {
  /** The queue, listed as `checks.queue`: not ok, the role is not ready. */
  queue?: QueueReadiness;
  /** True when the role is ready but its backlog is full: 503 `saturated`. */
  saturated?: boolean;
  /** What the role has in hand, listed before the checks (serve: inFlight, load, scanApi). */
  work?: Record<string, unknown>;
  /** libuv's threads, listed after the checks (serve). */
  threadPool?: number;
}

/** A `/readyz` answer: its HTTP status and its JSON body. */
export interface ReadinessAnswer {
  statusCode: 200 | 503;
  body: Record<string, unknown>;
}

/**
 * The `/readyz` answer of serve and of a queue worker: 200 `ready` when every backend is
 * ready, the queue (if any) is ok and the backlog is not full; 503 `not ready` or `saturated`
 * otherwise. The body lists `status`, the role's work, the `checks` (each backend's, then the
 * queue's), the thread pool, where the result cache lives (`cache`) and what the signatures
 * cover (`coverage`: `signatures`, or `test-signatures` with a `coverageNote`; still ready;
 * absent while queue mode's serve has not started its backends).
 */
export function readinessAnswer(
  backends: BackendReadiness,
  role: RoleReadiness,
  cache: string,
  coverage: SignatureCoverage | undefined,
): ReadinessAnswer {
  const ready = backends.ready && (role.queue?.ok ?? true);
  const saturated = ready && role.saturated === true;
  return {
    statusCode: ready && !saturated ? 200 : 503,
    body: {
      status: !ready ? "not ready" : saturated ? "saturated" : "ready",
      ...role.work,
      checks: role.queue ? { ...backends.checks, queue: role.queue } : backends.checks,
      ...(role.threadPool === undefined ? {} : { threadPool: role.threadPool }),
      cache,
      ...(coverage === undefined ? {} : { coverage }),
      ...(coverage === "test-signatures" ? { coverageNote: testSignaturesNote } : {}),
    },
  };
}
