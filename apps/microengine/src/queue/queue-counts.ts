import type { Queue } from "bullmq";
import type { EngineMetrics } from "../operations/metrics.js";
import { queueTiming } from "./queue-timing.js";

/**
 * Job counts read every second, for /readyz, saturation and the metrics; with `countWorkers`
 * (serve), the workers connected to the queue too (BullMQ names its workers' Redis connections:
 * one `CLIENT LIST` per read).
 */
export class QueueCounts {
  counts: Record<string, number> = {};
  /** Workers connected at the last read; undefined before one, or when not counted. */
  workers: number | undefined;
  readonly #timer: NodeJS.Timeout;
  constructor(queue: Queue, metrics: EngineMetrics, { countWorkers = false } = {}) {
    const read = (): void => {
      queue
        .getJobCounts("waiting", "active", "delayed", "failed")
        .then((counts) => {
          this.counts = counts;
          for (const [state, count] of Object.entries(counts))
            metrics.queueJobs.set({ state }, count);
        })
        .catch(() => {}); // Redis away: the last counts stay, readiness says why
      if (countWorkers)
        queue
          .getWorkers()
          .then((clients) => {
            // Where CLIENT is disabled (GCP Memorystore, a renamed command) BullMQ answers one
            // placeholder without the connection's name: the count is unknown, not 1.
            const known = clients.every((client) => typeof client.rawname === "string");
            this.workers = known ? clients.length : undefined;
            if (known) metrics.queueWorkers.set({ queue: queue.name }, clients.length);
            else metrics.queueWorkers.remove({ queue: queue.name });
          })
          .catch(() => {}); // as above (or CLIENT LIST refused by an ACL: stays as it was)
    };
    read();
    this.#timer = setInterval(read, queueTiming.countsEveryMs);
    this.#timer.unref();
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}
