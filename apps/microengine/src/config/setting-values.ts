import { z } from "zod";

/** A boolean variable: `1`, `true`, `yes` (or a boolean flag) are true; `0`, `false`, `no`, empty are false. */
export const booleanText = z
  .union([z.boolean(), z.enum(["1", "0", "true", "false", "yes", "no", ""])])
  .transform((value) => value === true || value === "1" || value === "true" || value === "yes");
/** A comma list, items trimmed, empty items dropped. */
export const list = z.string().transform((value) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0),
);
/** A whole number within `[minimum, maximum]`, from text or a number. */
export const integer = (minimum: number, maximum: number) =>
  z.coerce.number().int().min(minimum).max(maximum);
