import { z } from "zod";
import { redactUrls } from "../operations/redact.js";
import { artifactSettings } from "./artifact-settings.js";
import { backendSettings } from "./backend-settings.js";
import { bountySettings } from "./bounty-settings.js";
import { httpSettings } from "./http-settings.js";
import { loggingSettings } from "./logging-settings.js";
import { queueSettings } from "./queue-settings.js";
import { unpackSettings } from "./unpack-settings.js";

export { type BackendName, backendNames, isBackendModuleEntry } from "./backend-settings.js";

/**
 * Every setting of the engine, by its environment variable, one group per concern (the files
 * beside this one). Flags override variables and are validated by the same schema, so a
 * message always names the variable.
 */
export const engineConfigSchema = z.object({
  ...httpSettings.shape,
  ...backendSettings.shape,
  ...unpackSettings.shape,
  ...artifactSettings.shape,
  ...bountySettings.shape,
  ...queueSettings.shape,
  ...loggingSettings.shape,
});

/**
 * Settings whose default, when they are unset, is at least ARTIFACT_MAX_BYTES (set, they are
 * what they say): the example environment file leaves them empty.
 */
export const settingsFollowingArtifactMaxBytes = [
  "UNPACK_MAX_MEMBER_BYTES",
  "UNPACK_MAX_TOTAL_BYTES",
] as const;

/** The engine's validated settings. */
export type EngineConfig = z.output<typeof engineConfigSchema>;

/** Thrown when settings do not validate; the message names each variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * Reads the settings from the environment, with flags (already mapped to variable names)
 * taking precedence. Empty variables count as unset.
 */
export function loadConfig(
  environment: NodeJS.ProcessEnv,
  overrides: Partial<Record<keyof EngineConfig, unknown>> = {},
): EngineConfig {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(engineConfigSchema.shape)) {
    const value = overrides[key as keyof EngineConfig] ?? environment[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = engineConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? "configuration");
        const got = input[variable];
        // A secret is never echoed, not even a wrong one.
        const shown = /(SECRET|TOKEN)$/.test(variable)
          ? `${String(got).length} characters`
          : redactUrls(JSON.stringify(got) ?? String(got));
        return `${variable}: ${issue.message} (got ${shown})`;
      }),
    );
  }
  const config = parsed.data;
  // Unset, the unpacking byte bounds follow ARTIFACT_MAX_BYTES up: a file of that size is
  // looked into whole (a compound file is read whole under UNPACK_MAX_MEMBER_BYTES).
  for (const name of settingsFollowingArtifactMaxBytes)
    if (input[name] === undefined) config[name] = Math.max(config[name], config.ARTIFACT_MAX_BYTES);
  if (config.CLAMD_SOCKET && config.CLAMD_HOST) {
    throw new ConfigError(["CLAMD_SOCKET and CLAMD_HOST: set one of them, not both"]);
  }
  if (config.CLAMD_HOSTS && (config.CLAMD_SOCKET || config.CLAMD_HOST || config.CLAMD_PORT)) {
    throw new ConfigError([
      "CLAMD_HOSTS and CLAMD_SOCKET/CLAMD_HOST/CLAMD_PORT: set the pool or one clamd, not both",
    ]);
  }
  return config;
}
