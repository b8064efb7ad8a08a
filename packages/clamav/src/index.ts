export { type ClamavScanner, createClamavScanner } from "./clamav-scanner.js";
export { type ClamavScannerOptions, clamavScannerOptionsSchema } from "./clamav-scanner-options.js";
export {
  type ClamdAlertProbe,
  checkClamdAlerts,
  requiredClamdAlertSettings,
} from "./clamd-alert-check.js";
export { ClamdAlertGuard, type ClamdAlertStatus } from "./clamd-alert-guard.js";
export { ClamdClient, type ClamdScanMode, type ClamdScanOutcome } from "./clamd-client.js";
export {
  type ClamdClientOptions,
  clamdClientOptionsSchema,
  clamdConnectionOptionsSchema,
  type ResolvedClamdClientOptions,
} from "./clamd-client-options.js";
export type { ClamdEndpoint } from "./clamd-connection.js";
export {
  type ClamdHostState,
  ClamdPool,
  type ClamdService,
  parseClamdHost,
} from "./clamd-pool.js";
export type { ClamdReply, ClamdStats, ClamdVersion } from "./clamd-reply.js";
export { clamavPackageVersion } from "./version.js";
