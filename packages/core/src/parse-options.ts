import { z } from "zod";
import { InvalidOptionsError } from "./errors/invalid-options-error.js";

/**
 * Validates a factory's options with its zod schema and returns them with defaults applied, or
 * throws {@link InvalidOptionsError} whose message names the factory and each bad option.
 * @param schema the options schema
 * @param input what the caller passed
 * @param context `where` prefixes the message (`"@engine/clamav: createClamavScanner"`); `hint` says where the options are documented
 */
export function parseOptions<Schema extends z.ZodType>(
  schema: Schema,
  input: unknown,
  context: { where: string; hint?: string },
): z.output<Schema> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new InvalidOptionsError({
    message: `${context.where}: ${z.prettifyError(parsed.error)}`,
    ...(context.hint === undefined ? {} : { hint: context.hint }),
    cause: parsed.error,
  });
}
