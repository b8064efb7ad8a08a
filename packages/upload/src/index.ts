export type { TypeDecision } from "./content-type-policy.js";
export { decideType, looksLikeText, typeHeadBytes } from "./content-type-policy.js";
export { isMultipartFormData, type UploadBody } from "./multipart-request.js";
export type { UploadedFile, UploadFields, UploadOutcome } from "./outcome.js";
export {
  type ProblemFile,
  problemContentType,
  problemHeaders,
  problemOf,
  problemStatuses,
  problemTitles,
  type UploadProblem,
  type UploadProblemCode,
} from "./problems.js";
export { type DiskStorageOptions, diskStorage } from "./storage/disk-storage.js";
export { type MemoryFile, type MemoryStorage, memoryStorage } from "./storage/memory-storage.js";
export type {
  StorageFileInfo,
  StorageLocation,
  StorageSink,
  StorageWriter,
} from "./storage/storage-sink.js";
export { createUploadGuard, type UploadGuard, type UploadRequest } from "./upload-guard.js";
export {
  type ResolvedUploadGuardOptions,
  type UploadGuardOptions,
  type UploadLimits,
  uploadGuardOptionsSchema,
  uploadLimitsSchema,
} from "./upload-options.js";
