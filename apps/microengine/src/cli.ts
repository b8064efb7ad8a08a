#!/usr/bin/env node
import { Command } from "commander";
import { addCheckCommand } from "./commands/check-command.js";
import { addScanCommand } from "./commands/scan/scan-command.js";
import { addServeCommand } from "./commands/serve-command.js";
import { addSimulateCommand } from "./commands/simulate-command.js";
import { addWorkerCommand } from "./commands/worker-command.js";
import { ConfigError } from "./config/config.js";
import { errorMessage } from "./operations/error-message.js";
import { engineVersion } from "./operations/version.js";

/** The `microengine` program: its commands, in the order `--help` lists them. */
async function main(): Promise<void> {
  const program = new Command("microengine")
    .version(engineVersion)
    .description(
      "The engine reference microengine: ClamAV + YARA behind the PolySwarm webhook protocol.",
    );
  for (const addCommand of [
    addServeCommand,
    addWorkerCommand,
    addScanCommand,
    addCheckCommand,
    addSimulateCommand,
  ])
    addCommand(program);
  // Until a command finishes, the exit code says it did not: a start-up that never ends (a
  // backend module that never loads) must not look like success when the process empties.
  process.exitCode = 2;
  await program.parseAsync(process.argv);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) process.stderr.write(`microengine: ${error.message}\n`);
  else process.stderr.write(`microengine: ${errorMessage(error)}\n`);
  process.exit(2);
});
