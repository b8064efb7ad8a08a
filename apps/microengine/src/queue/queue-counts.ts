import type { Queue } from "bullmq";
import type { EngineMetrics } from "../operations/metrics.js";
import { queueTiming } from "./queue-timing.js";

/** Job counts read every second, for /readyz, saturation and the metrics. */
export class QueueCounts {
  counts: Record<string, number> = {};
  readonly #timer: NodeJS.Timeout;
  constructor(queue: Queue, metrics: EngineMetrics) {
    const read = (): void => {
      queue
        .getJobCounts("waiting", "active", "delayed", "failed")
        .then((counts) => {
          this.counts = counts;
          for (const [state, count] of Object.entries(counts))
            metrics.queueJobs.set({ state }, count);
        })
        .catch(() => {}); // Redis away: the last counts stay, readiness says why
    };
    read();
    this.#timer = setInterval(read, queueTiming.countsEveryMs);
    this.#timer.unref();
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}
