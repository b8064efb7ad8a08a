import { buildBackends, type EngineBackends } from "../backends/build-backends.js";
import type { EngineConfig } from "../config/config.js";
import { createLogger } from "../operations/logger.js";
import { type CommandFlags, configFrom } from "./command-flags.js";

/**
 * For a command that runs once (`scan`, `check`): the backends configured from `flags`
 * (logging at warn unless --log-level says otherwise), handed to `use` with the settings,
 * disposed after whatever `use` does (a managed clamd is stopped and its directory removed).
 */
export async function withBackends<Result>(
  flags: CommandFlags,
  use: (backends: EngineBackends, config: EngineConfig) => Promise<Result>,
  options?: Parameters<typeof buildBackends>[2],
): Promise<Result> {
  const config = configFrom({ logLevel: "warn", ...flags });
  const backends = await buildBackends(config, createLogger(config), options);
  try {
    return await use(backends, config);
  } finally {
    await backends.dispose();
  }
}
