#!/usr/bin/env node
import { Command, Option } from "commander";
import type { Logger } from "pino";
import { buildBackends } from "./backends/build-backends.js";
import { checkEngine } from "./commands/check-command.js";
import {
  type ScanFormat,
  scanExitCode,
  scanFormats,
  scanPaths,
} from "./commands/scan/scan-command.js";
import { startEngine, startWorker } from "./commands/serve-command.js";
import { simulate } from "./commands/simulate-command.js";
import { ConfigError, type EngineConfig, loadConfig } from "./config/config.js";
import { errorMessage } from "./operations/error-message.js";
import { createLogger } from "./operations/logger.js";
import { engineVersion } from "./operations/version.js";

type Flags = Record<string, unknown>;

/** Flags that set a configuration variable (the variable keeps the name in error messages). */
const flagVariables: Record<string, keyof EngineConfig> = {
  port: "PORT",
  host: "HOST",
  backends: "ENGINE_BACKENDS",
  rulesDir: "RULES_DIR",
  yaraEngine: "YARA_ENGINE",
  policy: "VERDICT_POLICY",
  insecureNoWebhookSecret: "INSECURE_NO_WEBHOOK_SECRET",
  logLevel: "LOG_LEVEL",
  logFormat: "LOG_FORMAT",
  queueUrl: "QUEUE_URL",
  workerConcurrency: "WORKER_CONCURRENCY",
};

function configFrom(flags: Flags): EngineConfig {
  const overrides: Partial<Record<keyof EngineConfig, unknown>> = {};
  for (const [flag, variable] of Object.entries(flagVariables))
    if (flags[flag] !== undefined) overrides[variable] = flags[flag];
  return loadConfig(process.env, overrides);
}

/** On SIGTERM or SIGINT: log `message`, run the graceful `close`, exit 0 (1 if closing failed). */
function stopOnSignals(logger: Logger, message: string, close: () => Promise<void>): void {
  const stop = (signal: string): void => {
    logger.info({ signal }, message);
    close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "error while stopping");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
}

/**
 * On SIGHUP (the usual "reload"): reload the rules and signatures, one reload at a time; a
 * failure is logged and counted, and the last good rules stay. Without this, SIGHUP would end
 * the process.
 */
function reloadOnHangup(logger: Logger): { started(reload: () => Promise<boolean>): void } {
  let reload: (() => Promise<boolean>) | undefined;
  let pending = false;
  const run = (): void => {
    if (!reload) {
      // Installed before start: a SIGHUP during start-up reloads once it is up, never kills it.
      pending = true;
      logger.info({ signal: "SIGHUP" }, "still starting: reloading once started");
      return;
    }
    logger.info({ signal: "SIGHUP" }, "reloading rules and signatures");
    reload().then(
      (ok) =>
        logger.info({ ok }, ok ? "reload done" : "reload failed; serving the last good rules"),
      (error: unknown) =>
        logger.error({ err: error }, "reload failed; serving the last good rules"),
    );
  };
  process.on("SIGHUP", run);
  // SIGHUPs the launcher (bin/microengine.cjs) counted before this handler existed.
  const early = globalThis as {
    __microengineEarlyHangups?: number;
    __microengineEarlyHangupListener?: () => void;
  };
  if (early.__microengineEarlyHangupListener) {
    process.off("SIGHUP", early.__microengineEarlyHangupListener);
    if ((early.__microengineEarlyHangups ?? 0) > 0) run();
  }
  return {
    started: (target) => {
      reload = target;
      if (pending) run();
    },
  };
}

/** A flag's whole number within [minimum, maximum], or a ConfigError naming the flag. */
function wholeNumber(value: unknown, flag: string, minimum: number, maximum: number): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < minimum || number > maximum)
    throw new ConfigError([
      `${flag}: a whole number from ${minimum} to ${maximum} (got ${JSON.stringify(value)})`,
    ]);
  return number;
}

function withEngineOptions(command: Command): Command {
  return command
    .option(
      "--backends <list>",
      "ENGINE_BACKENDS: eicar,clamav,yara and backend modules (./my-scanner.mjs, npm:<package>)",
    )
    .option("--rules-dir <path>", "RULES_DIR: YARA rules directory")
    .addOption(
      new Option("--yara-engine <engine>", "YARA_ENGINE").choices(["wasm", "native", "auto"]),
    )
    .option("--policy <policy>", "VERDICT_POLICY: any, majority, quorum:N, weighted:a=2,b=1:T")
    .addOption(
      new Option("--log-level <level>", "LOG_LEVEL").choices([
        "fatal",
        "error",
        "warn",
        "info",
        "debug",
        "trace",
        "silent",
      ]),
    )
    .addOption(new Option("--log-format <format>", "LOG_FORMAT").choices(["json", "pretty"]));
}

async function main(): Promise<void> {
  const program = new Command("microengine")
    .version(engineVersion)
    .description(
      "The engine reference microengine: ClamAV + YARA behind the PolySwarm webhook protocol.",
    );

  withEngineOptions(
    program.command("serve").description("run the webhook receiver and the HTTP scan API"),
  )
    .option("--port <port>", "PORT (8080)")
    .option("--host <host>", "HOST (127.0.0.1)")
    .option(
      "--insecure-no-webhook-secret",
      "INSECURE_NO_WEBHOOK_SECRET: accept unsigned webhooks (local tests only)",
    )
    .action(async (flags: Flags) => {
      const config = configFrom(flags);
      const logger = createLogger(config);
      const hangup = reloadOnHangup(logger);
      const engine = await startEngine(config, logger);
      stopOnSignals(logger, "stopping: no new bounties; answering what is in flight", engine.close);
      hangup.started(engine.reload);
    });

  withEngineOptions(
    program
      .command("worker")
      .description("queue mode: scan and answer the bounties that serve queued in QUEUE_URL"),
  )
    .option("--queue-url <url>", "QUEUE_URL: redis://host:6379")
    .option("--concurrency <n>", "WORKER_CONCURRENCY (4)")
    .action(async (flags: Flags) => {
      const config = configFrom({ ...flags, workerConcurrency: flags.concurrency });
      const logger = createLogger(config);
      const hangup = reloadOnHangup(logger);
      const worker = await startWorker(config, logger);
      stopOnSignals(logger, "stopping: answering the bounties in hand", worker.close);
      hangup.started(worker.reload);
      await worker.done;
    });

  withEngineOptions(program.command("scan").description("scan files and directories (recursively)"))
    .argument("<paths...>")
    .addOption(
      new Option("--format <format>", "text (summary), json (one line per file) or sarif")
        .choices(scanFormats)
        .default("text"),
    )
    .option("--json", "the same as --format json")
    .option("--concurrency <n>", "scans at once", "4")
    .option("--timeout <ms>", "per-artifact deadline in ms", "60000")
    .action(async (paths: string[], flags: Flags) => {
      const concurrency = wholeNumber(flags.concurrency, "--concurrency", 1, 256);
      const timeoutMs = wholeNumber(flags.timeout, "--timeout", 1, 24 * 3600 * 1000);
      // An empty argument (an unset shell variable) would otherwise scan the working directory.
      if (paths.some((path) => path.trim() === ""))
        throw new ConfigError(["scan: an empty path was given (an unset variable?)"]);
      const config = configFrom({ logLevel: "warn", ...flags });
      const logger = createLogger(config);
      const backends = await buildBackends(config, logger);
      try {
        const summary = await scanPaths(backends.scanner, paths, {
          format: flags.json ? "json" : (flags.format as ScanFormat),
          concurrency,
          timeoutMs,
          statuses: backends.statuses,
          out: process.stdout,
          err: process.stderr,
        });
        process.exitCode = scanExitCode(summary);
      } finally {
        await backends.dispose();
      }
    });

  withEngineOptions(
    program
      .command("check")
      .description("self-test: EICAR malicious, empty and benign files benign; versions"),
  ).action(async (flags: Flags) => {
    const config = configFrom({ logLevel: "warn", ...flags });
    // check runs the clamd alert probes itself and reports them instead of refusing to start.
    const backends = await buildBackends(config, createLogger(config), {
      verifyClamdAlerts: false,
    });
    try {
      process.exitCode = (await checkEngine(backends, process.stdout)) ? 0 : 1;
    } finally {
      await backends.dispose();
    }
  });

  program
    .command("simulate")
    .description("a local marketplace: post signed bounties to an engine and check its answers")
    .argument("[paths...]", "extra files to offer")
    .option("--engine <url>", "the engine's webhook URL", "http://127.0.0.1:8080/")
    .option("--secret <secret>", "the shared secret (default: WEBHOOK_SECRET)")
    .option("--expiration <seconds>", "seconds each bounty has", "30")
    .option("--serve-http", "serve artifacts over loopback HTTP instead of data: URIs")
    .action(async (paths: string[], flags: Flags) => {
      const results = await simulate({
        engineUrl: String(flags.engine),
        secret: (flags.secret as string | undefined) ?? process.env.WEBHOOK_SECRET,
        paths,
        expirationSeconds: Number(flags.expiration) || 30,
        serveHttp: Boolean(flags.serveHttp),
      });
      process.stdout.write(
        "artifact        phase        verdict     bid                      latency  result\n",
      );
      for (const result of results) {
        process.stdout.write(
          `${result.artifact.padEnd(15)} ${result.phase.padEnd(12)} ${String(result.verdict ?? "-").padEnd(11)} ${String(result.bid ?? "-").padEnd(24)} ${result.latencyMs === undefined ? "-" : `${result.latencyMs} ms`.padEnd(8)} ${result.status === "ok" ? "ok" : `FAILED: ${result.problems.join("; ")}`}\n`,
        );
      }
      const failed = results.filter((result) => result.status !== "ok").length;
      process.stdout.write(
        failed === 0
          ? `simulation passed: ${results.length} bounties answered correctly\n`
          : `simulation FAILED: ${failed} of ${results.length}\n`,
      );
      process.exitCode = failed === 0 ? 0 : 1;
    });

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
