import type { Command } from "commander";
import { type CommandFlags, configFrom, withEngineOptions } from "./command-flags.js";

/**
 * Adds `microengine worker`: queue mode's worker, until SIGTERM or SIGINT. The queue's modules
 * load when the command runs, not when the program starts.
 */
export function addWorkerCommand(program: Command): void {
  withEngineOptions(
    program
      .command("worker")
      .description("queue mode: scan and answer the bounties that serve queued in QUEUE_URL"),
  )
    .option("--queue-url <url>", "QUEUE_URL: redis://host:6379")
    .option("--concurrency <n>", "WORKER_CONCURRENCY (4)")
    .action(async (flags: CommandFlags) => {
      const config = configFrom({ ...flags, workerConcurrency: flags.concurrency });
      const [{ runService }, { startWorker }] = await Promise.all([
        import("./engine-runtime.js"),
        import("./worker-engine.js"),
      ]);
      const worker = await runService(
        config,
        "stopping: answering the bounties in hand",
        startWorker,
      );
      await worker.done;
    });
}
