import { type Command, Option } from "commander";
import { ConfigError, type EngineConfig, loadConfig } from "../config/config.js";

/** A command's parsed flags, as commander hands them to its action. */
export type CommandFlags = Record<string, unknown>;

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
  maxFileSize: "ARTIFACT_MAX_BYTES",
};

/**
 * Flags that turn a variable off (`--no-unpack`): commander sets them true when absent, so only
 * `false` overrides the variable.
 */
const negatedFlagVariables: Record<string, keyof EngineConfig> = {
  unpack: "UNPACK",
};

/** The configuration from the environment, each flag given winning over its variable. */
export function configFrom(flags: CommandFlags): EngineConfig {
  const overrides: Partial<Record<keyof EngineConfig, unknown>> = {};
  for (const [flag, variable] of Object.entries(flagVariables))
    if (flags[flag] !== undefined) overrides[variable] = flags[flag];
  for (const [flag, variable] of Object.entries(negatedFlagVariables))
    if (flags[flag] === false) overrides[variable] = false;
  return loadConfig(process.env, overrides);
}

/** A flag's whole number within [minimum, maximum], or a ConfigError naming the flag. */
export function wholeNumber(
  value: unknown,
  flag: string,
  minimum: number,
  maximum: number,
): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < minimum || number > maximum)
    throw new ConfigError([
      `${flag}: a whole number from ${minimum} to ${maximum} (got ${JSON.stringify(value)})`,
    ]);
  return number;
}

/** Adds the flags every engine command takes: backends, rules, YARA engine, policy, logging. */
export function withEngineOptions(command: Command): Command {
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
