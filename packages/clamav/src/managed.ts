// `@engine/clamav/managed`: a private clamd that this package starts and stops (its own
// config, socket, database directory with the shipped signatures, alert settings), as the
// reference engine runs by default and as tests use it.
export {
  type ManagedClamd,
  type ManagedClamdOptions,
  managedClamdOptionsSchema,
  shippedSignaturesDirectory,
  startManagedClamd,
} from "./managed-clamd.js";
export {
  type RemovedClamdDirectory,
  removeStaleClamdDirectories,
  type StaleClamdSweep,
  type StaleClamdSweepOptions,
} from "./managed-clamd-sweep.js";
