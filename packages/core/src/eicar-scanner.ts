import { z } from "zod";
import { defineScanner } from "./define-scanner.js";
import { eicarBytes } from "./eicar.js";
import { parseOptions } from "./parse-options.js";
import type { ScanResult } from "./scan-result.js";
import type { Scanner } from "./scanner.js";
import { verdictMetadata } from "./verdict-metadata.js";
import { engineCoreVersion } from "./version.js";

/** Options of {@link createEicarScanner}. */
export const eicarScannerOptionsSchema = z
  .strictObject({
    /** Scanner name. Default `"eicar"`. */
    name: z.string().min(1).default("eicar"),
    /** Confidence of a detection, 0..1. Default 1. */
    confidence: z.number().min(0).max(1).default(1),
  })
  .default({ name: "eicar", confidence: 1 });

/** Options of {@link createEicarScanner}; see {@link eicarScannerOptionsSchema}. */
export type EicarScannerOptions = z.input<typeof eicarScannerOptionsSchema>;

/** The family the EICAR scanner reports. */
export const eicarMalwareFamily = "EICAR-Test-File";

/**
 * The tutorial's first engine, as the smallest complete backend: `malicious` when the EICAR
 * test string appears anywhere in the artifact, `benign` otherwise. It streams the artifact
 * (64 KiB at a time, so a 1 GB file costs no memory) and stops reading at the first match.
 * It is also the conformance suite's own self-test.
 *
 * @example
 * await using scanner = createEicarScanner();
 * const result = await scanner.scan(artifactFromBytes(eicarBytes()));
 * // result.verdict === "malicious"
 */
export function createEicarScanner(options?: EicarScannerOptions): Scanner {
  const { name, confidence } = parseOptions(eicarScannerOptionsSchema, options, {
    where: "@engine/core: createEicarScanner",
  });
  const needle = eicarBytes();
  const overlap = needle.length - 1;
  const scannerInfo = {
    version: engineCoreVersion,
    vendor_version: engineCoreVersion,
    signatures_version: "1",
  };

  return defineScanner({
    name,
    async scan(artifact, { signal }): Promise<ScanResult> {
      let carry = Buffer.alloc(0);
      let found = false;
      const stream = artifact.stream({ signal });
      for await (const chunk of stream) {
        const window =
          carry.length > 0 ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
        if (window.indexOf(needle) !== -1) {
          found = true;
          stream.destroy();
          break;
        }
        carry = Buffer.from(window.subarray(Math.max(0, window.length - overlap)));
      }
      const metadata = verdictMetadata(found ? eicarMalwareFamily : "")
        .product("eicar")
        .scanner(scannerInfo)
        .build();
      return found
        ? { verdict: "malicious", confidence, metadata }
        : { verdict: "benign", confidence: 1, metadata };
    },
  });
}
