export { clamdAlertsOff } from "./clamd-alert-check.js";
export {
  type ManagedClamd,
  type ManagedClamdOptions,
  managedClamdOptionsSchema,
  shippedSignaturesDirectory,
  startManagedClamd,
} from "./managed-clamd.js";
export { type SignatureSamples, sampleSignatures, signatureSamples } from "./signature-samples.js";
export { crc32, nestedZip, type ZipEntry, zipArchive } from "./zip-archive.js";
