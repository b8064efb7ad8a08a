import { z } from "zod";
import { InvalidResultError } from "./errors/invalid-result-error.js";
import { verdictSchema } from "./verdict.js";
import { verdictMetadataSchema } from "./verdict-metadata.js";

/**
 * What a scanner answers for one artifact: a verdict, a confidence from 0 (none) to 1
 * (certain), and PolySwarm verdict metadata.
 */
export const scanResultSchema = z.object({
  verdict: verdictSchema,
  confidence: z.number().min(0).max(1),
  metadata: verdictMetadataSchema,
});

/** A scanner's answer; see {@link scanResultSchema}. */
export type ScanResult = z.infer<typeof scanResultSchema>;

/**
 * Validates a value a scanner returned. Throws {@link InvalidResultError} naming the scanner
 * and each bad field, so a buggy backend becomes that backend's error, never a verdict.
 * @param value what the scanner returned
 * @param scannerName used in the error message
 */
export function parseScanResult(value: unknown, scannerName = "scanner"): ScanResult {
  const parsed = scanResultSchema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new InvalidResultError({
    message: `@engine/core: ${scannerName} returned an invalid scan result: ${z.prettifyError(parsed.error)}`,
    hint: `Fix the scanner "${scannerName}" so that it returns { verdict, confidence (0..1), metadata: { malware_family, ... } }.`,
    cause: parsed.error,
    scanner: scannerName,
  });
}
