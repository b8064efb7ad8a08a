import type { Queue } from "bullmq";
import { describe, expect, it, vi } from "vitest";
import { createMetrics } from "../../src/operations/metrics.js";
import { QueueCounts } from "../../src/queue/queue-counts.js";

/** A queue whose CLIENT LIST answers `clients` (BullMQ's parsed connections). */
function queueWith(clients: Array<Record<string, string>>) {
  return {
    name: "bounties",
    getJobCounts: async () => ({ waiting: 3, active: 0, delayed: 0, failed: 0 }),
    getWorkers: async () => clients,
  } as unknown as Queue;
}

async function countsOf(clients: Array<Record<string, string>>) {
  const metrics = createMetrics();
  const counts = new QueueCounts(queueWith(clients), metrics, { countWorkers: true });
  await vi.waitFor(() => expect(counts.counts).toMatchObject({ waiting: 3 }));
  await new Promise((resolve) => setImmediate(resolve));
  counts.stop();
  return { workers: counts.workers, exported: await metrics.registry.metrics() };
}

describe("QueueCounts' worker count (serve)", () => {
  it("counts the workers' named connections", async () => {
    const { workers, exported } = await countsOf([
      { name: "w1", rawname: "bull:Ym91bnRpZXM=:w:w1" },
      { name: "w2", rawname: "bull:Ym91bnRpZXM=:w:w2" },
    ]);
    expect(workers).toBe(2);
    expect(exported).toContain('engine_queue_workers{queue="bounties"} 2');
  });

  it("says unknown, not 1, where Redis refuses CLIENT LIST (BullMQ's placeholder entry)", async () => {
    const { workers, exported } = await countsOf([{ name: "GCP does not support client list" }]);
    expect(workers).toBeUndefined();
    expect(exported).not.toContain('engine_queue_workers{queue="bounties"}');
  });
});
