// `@engine/clamav/testing`: what tests of a ClamAV setup need besides a clamd (which lives in
// `@engine/clamav/managed`): clamd settings without the alerts, signature samples, zip builders.
export { clamdAlertsOff } from "./clamd-alert-check.js";
export { type SignatureSamples, sampleSignatures, signatureSamples } from "./signature-samples.js";
export { crc32, nestedZip, type ZipEntry, zipArchive } from "./zip-archive.js";
