import { z } from "zod";

/** Logs. */
export const loggingSettings = z.object({
  /** pino level. Default info. */
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** json (default) or pretty (one readable line per event). */
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
});
