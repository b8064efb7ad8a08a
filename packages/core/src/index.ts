export {
  type Artifact,
  type ArtifactInfo,
  type ArtifactKind,
  type ArtifactReadOptions,
  type ArtifactStreamSource,
  artifactFromBytes,
  artifactFromFile,
  artifactFromStream,
  artifactFromUrl,
  artifactInfoSchema,
} from "./artifact.js";
export { ConcurrencyLimit, type ConcurrencyLimitOptions } from "./concurrency-limit.js";
export {
  defineScanner,
  isScanContext,
  keepsContract,
  type ScanContext,
  type ScannerDefinition,
} from "./define-scanner.js";
export { eicarBytes, eicarTestString } from "./eicar.js";
export {
  createEicarScanner,
  type EicarScannerOptions,
  eicarMalwareFamily,
  eicarScannerOptionsSchema,
} from "./eicar-scanner.js";
export { errorVerdictComments, scanResultForError } from "./error-verdict.js";
export { ArtifactTooLargeError } from "./errors/artifact-too-large-error.js";
export { ArtifactUnavailableError } from "./errors/artifact-unavailable-error.js";
export { BackendUnavailableError } from "./errors/backend-unavailable-error.js";
export { CorruptArtifactError } from "./errors/corrupt-artifact-error.js";
export { EncryptedArtifactError } from "./errors/encrypted-artifact-error.js";
export {
  EngineError,
  type EngineErrorCode,
  type EngineErrorOptions,
  publicError,
  publicErrorMessages,
  stampScannerName,
} from "./errors/engine-error.js";
export { InvalidOptionsError } from "./errors/invalid-options-error.js";
export { InvalidResultError } from "./errors/invalid-result-error.js";
export { OverloadedError } from "./errors/overloaded-error.js";
export { ProtocolError } from "./errors/protocol-error.js";
export { ScanAbortedError } from "./errors/scan-aborted-error.js";
export { ScanTimeoutError } from "./errors/scan-timeout-error.js";
export { UnsupportedArtifactError } from "./errors/unsupported-artifact-error.js";
export {
  fromLegacyScanner,
  fromLegacyTuple,
  type LegacyScanFunction,
  type LegacyTuple,
  type LegacyTupleInput,
  toLegacyTuple,
} from "./legacy-tuple.js";
export { parseOptions } from "./parse-options.js";
export {
  artifactViewKey,
  type CachedScannerOptions,
  createCachedScanner,
  createMemoryResultStore,
  isConclusive,
  type ResultCacheOutcome,
  type ResultCacheStore,
  signaturesVersionKey,
} from "./result-cache.js";
export { parseScanResult, type ScanResult, scanResultSchema } from "./scan-result.js";
export {
  createScanSignal,
  errorFromSignal,
  raceSignal,
  type ScanSignal,
  type ScanSignalOptions,
} from "./scan-signal.js";
export { type Scanner, type ScanOptions, scanOptionsSchema } from "./scanner.js";
export { type ScannerEnvironment, scannerEnvironment } from "./scanner-environment.js";
export { type Verdict, verdictSchema, verdicts } from "./verdict.js";
export {
  type BackendProvenance,
  backendProvenanceSchema,
  type ScannerInfo,
  type StixSignature,
  scannerEnvironmentSchema,
  scannerInfoSchema,
  stixSignatureSchema,
  type VerdictMetadata,
  VerdictMetadataBuilder,
  verdictMetadata,
  verdictMetadataSchema,
} from "./verdict-metadata.js";
export { engineCoreVersion } from "./version.js";
