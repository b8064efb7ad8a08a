import {
  createUnpackingScanner,
  type UnpackedMember,
  type UnpackLimits,
  unpackLimitsSchema,
  unpackPackageVersion,
} from "@engine/unpack";
import { type ByteLimitSetting, backendByteLimits } from "../config/backend-byte-limits.js";
import type { EngineConfig } from "../config/config.js";
import type { EngineBackend } from "./backend-kind.js";

/** The settings of seeing inside containers. */
export type UnpackSetting = "UNPACK" | "UNPACK_MAX_DEPTH" | "UNPACK_MAX_MEMBERS" | ByteLimitSetting;

/**
 * The bounds of one artifact's walk from the UNPACK_MAX_* settings, the byte bounds at least
 * ARTIFACT_MAX_BYTES (see backendByteLimits; the ratio bound keeps
 * `@engine/unpack`'s default), or undefined when UNPACK is off.
 */
export function unpackLimitsOf(
  config: Pick<EngineConfig, UnpackSetting>,
): UnpackLimits | undefined {
  if (!config.UNPACK) return undefined;
  return unpackLimitsSchema.parse({
    maxDepth: config.UNPACK_MAX_DEPTH,
    maxMembers: config.UNPACK_MAX_MEMBERS,
    maxMemberBytes: backendByteLimits(config).unpackMaxMemberBytes,
    maxTotalBytes: backendByteLimits(config).unpackMaxTotalBytes,
  });
}

/**
 * What of unpacking changes answers, for the result cache's key: off, or `@engine/unpack`'s
 * version (a new decoder sees more) and the limits.
 */
export function unpackCacheKey(config: Pick<EngineConfig, UnpackSetting>): unknown {
  const limits = unpackLimitsOf(config);
  return limits ? { unpack: unpackPackageVersion, limits } : { unpack: false };
}

/**
 * `backend` seeing inside containers when UNPACK is on: its scanner wrapped by
 * `createUnpackingScanner` (same name, so VERDICT_POLICY, metrics and provenance keep
 * working), which scans the artifact as before, then each member, and answers once with
 * `metadata.unpack`. `scanMember` picks the members the backend is given (all by default:
 * ClamAV is given only those it cannot decode itself). With UNPACK off, `backend` as it is.
 */
export function withUnpacking(
  backend: EngineBackend,
  config: Pick<EngineConfig, UnpackSetting>,
  scanMember?: (member: UnpackedMember) => boolean,
): EngineBackend {
  const limits = unpackLimitsOf(config);
  if (!limits) return backend;
  // Closing it closes the backend's scanner even when the wrapper never set up (no scan came):
  // the backend set itself up at build (createUnpackingScanner's close does both).
  const scanner = createUnpackingScanner(backend.scanner, {
    limits,
    ...(scanMember ? { scanMember } : {}),
  });
  const inside = scanMember
    ? "inside containers: its own decoders, and @engine/unpack for the rest (UNPACK)"
    : "inside containers: @engine/unpack (UNPACK)";
  const status = { ...backend.status, reason: `${backend.status.reason}; ${inside}` };
  return { ...backend, scanner, status, unpacks: true };
}
