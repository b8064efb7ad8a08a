import { type ScanResult, scannerEnvironment } from "@engine/core";
import { engineVersion } from "../operations/version.js";

/** Our engine's part of the metadata: engine version, environment, product. */
export function withEngineMetadata(result: ScanResult): ScanResult {
  return {
    ...result,
    metadata: {
      ...result.metadata,
      product: "engine-microengine",
      scanner: {
        ...result.metadata.scanner,
        version: engineVersion,
        environment: { ...scannerEnvironment() },
      },
    },
  };
}
