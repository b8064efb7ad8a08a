import { z } from "zod";
import { InvalidResultError } from "./errors/invalid-result-error.js";
import { plainCopy } from "./plain-copy.js";
import { scannerEnvironment } from "./scanner-environment.js";

/** `scanner.environment` of the PolySwarm verdict metadata. Extra keys are kept. */
export const scannerEnvironmentSchema = z.looseObject({
  operating_system: z.string().optional(),
  architecture: z.string().optional(),
});

/**
 * `scanner` of the PolySwarm verdict metadata: who produced the verdict. Extra keys are kept.
 * `version` is the engine's own version and, as in polyswarm-artifact, digits and dots only.
 */
export const scannerInfoSchema = z.looseObject({
  version: z
    .string()
    .regex(/^\d+(\.\d+)*$/, "scanner.version must be digits and dots, e.g. 1.2.3")
    .optional(),
  vendor_version: z.string().optional(),
  signatures_version: z.string().optional(),
  environment: scannerEnvironmentSchema.optional(),
});

/** One STIX signature entry of the verdict metadata. */
export const stixSignatureSchema = z.looseObject({
  schema: z.string(),
  signature: z.string(),
});

/**
 * One backend's part in a combined verdict (`metadata.backends` of a multi-engine result):
 * what it answered, or the code of the error it failed with, and how long it took.
 */
export const backendProvenanceSchema = z.looseObject({
  /** The backend scanner's name. */
  name: z.string(),
  /** Its verdict; `unknown` when it failed. */
  verdict: z.enum(["malicious", "benign", "suspicious", "unknown"]),
  /** Its confidence, 0..1 (0 when it failed). */
  confidence: z.number().min(0).max(1),
  /** Its `malware_family` (`""` for none). */
  malware_family: z.string(),
  /** Wall time of its scan, in milliseconds. */
  duration_ms: z.number().nonnegative(),
  /** The `EngineError` code when it failed. */
  error_code: z.string().optional(),
  /** The error's short public reason when it failed (details go to logs, not answers). */
  error: z.string().optional(),
  /**
   * True when the backend answered but could not look inside the artifact (an encrypted
   * archive, a scan limit hit: `unknown` with a `SKIPPED:*` comment). A multi-engine never
   * answers `benign` over an inconclusive backend.
   */
  inconclusive: z.boolean().optional(),
  /** Why it was inconclusive: its first `SKIPPED:*` or `ERROR:*` comment, e.g. `SKIPPED:ENCRYPTED`. */
  reason: z.string().optional(),
  /** Its full verdict metadata when it answered. */
  metadata: z.record(z.string(), z.unknown()).optional(),
});

/** One entry of `metadata.backends`; see {@link backendProvenanceSchema}. */
export type BackendProvenance = z.infer<typeof backendProvenanceSchema>;

/**
 * The PolySwarm verdict metadata (polyswarm-artifact's `Verdict` schema): `malware_family` is
 * required (`""` when there is none), everything else optional, and extra keys are allowed
 * and kept (backends put their own details there, the multi-engine its provenance).
 */
export const verdictMetadataSchema = z.looseObject({
  malware_family: z.string(),
  product: z.string().optional(),
  scanner: scannerInfoSchema.optional(),
  domains: z.array(z.string()).optional(),
  ip_addresses: z.array(z.string()).optional(),
  heuristic: z.boolean().optional(),
  stix: z.array(stixSignatureSchema).optional(),
  comments: z.array(z.string()).optional(),
  /** Per-backend provenance, set by multi-engines (`@engine/multi`). */
  backends: z.array(backendProvenanceSchema).optional(),
});

/** Verdict metadata; see {@link verdictMetadataSchema}. */
export type VerdictMetadata = z.infer<typeof verdictMetadataSchema>;
/** The `scanner` block of {@link VerdictMetadata}. */
export type ScannerInfo = z.infer<typeof scannerInfoSchema>;
/** One entry of {@link VerdictMetadata.stix}. */
export type StixSignature = z.infer<typeof stixSignatureSchema>;

/**
 * A small fluent builder for {@link VerdictMetadata}, in the spirit of polyswarm-artifact's
 * `Verdict().set_malware_family(...)`. Each call returns the builder; `build()` validates.
 *
 * @example
 * const metadata = verdictMetadata("Eicar-Test-Signature")
 *   .scanner({ vendor_version: "1.4.6", signatures_version: "27000" })
 *   .comment("found by md5")
 *   .build();
 */
export class VerdictMetadataBuilder {
  readonly #metadata: Record<string, unknown>;

  /** Starts from `base` (copied, not mutated); `malware_family` defaults to `""`. */
  constructor(base: Partial<VerdictMetadata> = {}) {
    this.#metadata = plainCopy({ malware_family: "", ...base });
  }

  /** Sets `malware_family` (`""` for none). */
  malwareFamily(name: string): this {
    this.#metadata.malware_family = name;
    return this;
  }

  /** Sets `product`, the human name of the engine or backend. */
  product(name: string): this {
    this.#metadata.product = name;
    return this;
  }

  /**
   * Merges `info` into `scanner`. The environment (OS and architecture of this process) is
   * filled in unless `info.environment` is given.
   */
  scanner(info: ScannerInfo): this {
    const current = (this.#metadata.scanner as ScannerInfo | undefined) ?? {};
    this.#metadata.scanner = { environment: scannerEnvironment(), ...current, ...info };
    return this;
  }

  /** Appends a domain seen in the artifact. */
  domain(...names: string[]): this {
    return this.#append("domains", names);
  }

  /** Appends an IP address seen in the artifact. */
  ipAddress(...addresses: string[]): this {
    return this.#append("ip_addresses", addresses);
  }

  /** Marks the verdict as heuristic (not from an exact signature). Default `true`. */
  heuristic(value = true): this {
    this.#metadata.heuristic = value;
    return this;
  }

  /** Appends a STIX signature. */
  stix(signature: StixSignature): this {
    return this.#append("stix", [signature]);
  }

  /** Appends free-text comments, e.g. `SKIPPED:ENCRYPTED`. */
  comment(...comments: string[]): this {
    return this.#append("comments", comments);
  }

  /** Sets any extra key (the schema allows them), e.g. backend-specific details. */
  set(key: string, value: unknown): this {
    this.#metadata[key] = value;
    return this;
  }

  /** Validates and returns a fresh metadata object; throws {@link InvalidResultError}. */
  build(): VerdictMetadata {
    const parsed = verdictMetadataSchema.safeParse(this.#metadata);
    if (!parsed.success) {
      throw new InvalidResultError({
        message: `@engine/core: verdict metadata is invalid: ${z.prettifyError(parsed.error)}`,
        hint: "Check the values given to the verdict metadata builder.",
        cause: parsed.error,
      });
    }
    return plainCopy(parsed.data);
  }

  #append(key: string, values: unknown[]): this {
    const current = (this.#metadata[key] as unknown[] | undefined) ?? [];
    this.#metadata[key] = [...current, ...values];
    return this;
  }
}

/**
 * Starts a {@link VerdictMetadataBuilder}.
 * @param malwareFamily the family name, `""` (default) when there is none.
 */
export function verdictMetadata(malwareFamily = ""): VerdictMetadataBuilder {
  return new VerdictMetadataBuilder({ malware_family: malwareFamily });
}
