export {
  type ManagedClamd,
  type ManagedClamdOptions,
  managedClamdOptionsSchema,
  shippedSignaturesDirectory,
  startManagedClamd,
} from "./managed-clamd.js";
export { type SignatureSamples, sampleSignatures, signatureSamples } from "./signature-samples.js";
