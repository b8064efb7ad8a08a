import type { Command } from "commander";
import type { CommandFlags } from "./command-flags.js";

/**
 * Adds `microengine simulate [paths...]`: exit code 0 when every answer passed, 1 when not. The
 * local marketplace's modules load when the command runs, not when the program starts.
 */
export function addSimulateCommand(program: Command): void {
  program
    .command("simulate")
    .description("a local marketplace: post signed bounties to an engine and check its answers")
    .argument("[paths...]", "extra files to offer")
    .option("--engine <url>", "the engine's webhook URL", "http://127.0.0.1:8080/")
    .option("--secret <secret>", "the shared secret (default: WEBHOOK_SECRET)")
    .option("--expiration <seconds>", "seconds each bounty has", "30")
    .option("--serve-http", "serve artifacts over loopback HTTP instead of data: URIs")
    .action(async (paths: string[], flags: CommandFlags) => {
      const [{ simulate }, { writeSimulationReport }] = await Promise.all([
        import("./simulate/simulation.js"),
        import("./simulate/simulation-report.js"),
      ]);
      const results = await simulate({
        engineUrl: String(flags.engine),
        secret: (flags.secret as string | undefined) ?? process.env.WEBHOOK_SECRET,
        paths,
        expirationSeconds: Number(flags.expiration) || 30,
        serveHttp: Boolean(flags.serveHttp),
      });
      process.exitCode = writeSimulationReport(results, process.stdout);
    });
}
