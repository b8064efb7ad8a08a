export {
  type ContainerCandidate,
  type ContainerFormat,
  type ContainerHints,
  containerFormats,
  identifyContainer,
} from "./container-formats.js";
export type { LimitName, SkipCode } from "./extractors/extractor.js";
export { type UnpackCallOptions, type UnpackEvent, type UnpackedMember, unpack } from "./unpack.js";
export {
  type ResolvedUnpackOptions,
  type UnpackLimits,
  type UnpackOptions,
  unpackLimitsSchema,
  unpackOptionsSchema,
} from "./unpack-options.js";
export { createUnpackingScanner, type UnpackReport } from "./unpacking-scanner.js";
export { unpackPackageVersion } from "./version.js";
