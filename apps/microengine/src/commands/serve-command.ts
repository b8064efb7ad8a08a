import type { Command } from "commander";
import { type CommandFlags, configFrom, withEngineOptions } from "./command-flags.js";

/**
 * Adds `microengine serve`: the webhook receiver and the HTTP scan API, until SIGTERM or SIGINT.
 * The service's modules (HTTP server, queue, downloads) load when the command runs, not when the
 * program starts: `scan` and `check` do not pay for them.
 */
export function addServeCommand(program: Command): void {
  withEngineOptions(
    program.command("serve").description("run the webhook receiver and the HTTP scan API"),
  )
    .option("--port <port>", "PORT (8080)")
    .option("--host <host>", "HOST (127.0.0.1)")
    .option(
      "--insecure-no-webhook-secret",
      "INSECURE_NO_WEBHOOK_SECRET: accept unsigned webhooks (local tests only)",
    )
    .action(async (flags: CommandFlags) => {
      const config = configFrom(flags);
      const [{ runService }, { startEngine }] = await Promise.all([
        import("./engine-runtime.js"),
        import("./serve-engine.js"),
      ]);
      await runService(
        config,
        "stopping: no new bounties; answering what is in flight",
        startEngine,
      );
    });
}
