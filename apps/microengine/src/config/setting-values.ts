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

/** Bytes per unit of a size: K, M, G, T are binary (1M = 1,048,576), as in clamd.conf. */
const byteUnits: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * A size in bytes within `[minimum, maximum]`: a number, or text of digits with an optional
 * unit K, M, G or T (binary: `100M` is 104,857,600 bytes; `MB`, `MiB` are read the same).
 */
export const byteSize = (minimum: number, maximum: number) =>
  z
    .union([z.number(), z.string()])
    .transform((value, context) => {
      if (typeof value === "number") return value;
      const match = /^\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(value);
      if (match) return Number(match[1]) * (byteUnits[(match[2] ?? "").toUpperCase()] ?? 1);
      context.addIssue({
        code: "custom",
        message: "a size in bytes, or with a unit K, M, G or T (binary: 100M = 104857600)",
      });
      return z.NEVER;
    })
    .pipe(z.number().int().min(minimum).max(maximum));
