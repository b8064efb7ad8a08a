import pino, { type Logger } from "pino";
import type { EngineConfig } from "../config/config.js";

/** pino JSON logs (LOG_FORMAT=json) or one readable line per event (pretty), at LOG_LEVEL, to stderr. */
export function createLogger(config: Pick<EngineConfig, "LOG_LEVEL" | "LOG_FORMAT">): Logger {
  if (config.LOG_FORMAT === "pretty") {
    return pino(
      { level: config.LOG_LEVEL, base: undefined, timestamp: false },
      {
        write(line: string) {
          const { level, msg, ...rest } = JSON.parse(line) as Record<string, unknown>;
          const name = pino.levels.labels[Number(level)] ?? String(level);
          const details = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : "";
          process.stderr.write(`${name.padEnd(5)} ${String(msg ?? "")}${details}\n`);
        },
      },
    );
  }
  return pino({ level: config.LOG_LEVEL }, pino.destination(2));
}
