import type { EngineConfig } from "./config.js";

/** YARA's own default for the largest artifact it scans (`@engine/yara`'s maxScanBytes). */
export const yaraDefaultMaxScanBytes = 256 * 1024 * 1024;

/** The settings the backends' byte limits come from. */
export type ByteLimitSetting =
  | "ARTIFACT_MAX_BYTES"
  | "UNPACK_MAX_MEMBER_BYTES"
  | "UNPACK_MAX_TOTAL_BYTES";

/** Each backend's byte limits; see {@link backendByteLimits}. */
export interface BackendByteLimits {
  /** A managed clamd's `clamd.conf` limits, in bytes. */
  clamdConfig: { MaxFileSize: number; MaxScanSize: number; StreamMaxLength: number };
  /** The clamd client's `maxStreamBytes` (the same as StreamMaxLength). */
  clamdMaxStreamBytes: number;
  /** YARA's `maxScanBytes`. */
  yaraMaxScanBytes: number;
  /** Unpacking's `maxMemberBytes` (a compound file at the root is read whole under it). */
  unpackMaxMemberBytes: number;
  /** Unpacking's `maxTotalBytes`. */
  unpackMaxTotalBytes: number;
}

/**
 * The byte limits every backend is given, so that a file of ARTIFACT_MAX_BYTES is scanned
 * whole by each of them: clamd's and YARA's are at least ARTIFACT_MAX_BYTES and at least the
 * unpacking bounds (UNPACK_MAX_MEMBER_BYTES is ClamAV's MaxFileSize, which bounds members too;
 * UNPACK_MAX_TOTAL_BYTES its MaxScanSize), YARA's never below its own default. The unpacking
 * bounds are the settings: unset, they follow ARTIFACT_MAX_BYTES up (loadConfig); set, they
 * are what they say. With the defaults (100 MiB, 100 MiB, 400 MiB) these are clamd's own
 * defaults. clamd cannot scan a file of 2 GiB or more whatever its MaxFileSize (it answers
 * that the limit was exceeded: `unknown`).
 */
export function backendByteLimits(config: Pick<EngineConfig, ByteLimitSetting>): BackendByteLimits {
  const file = config.ARTIFACT_MAX_BYTES;
  const member = Math.max(file, config.UNPACK_MAX_MEMBER_BYTES);
  const total = Math.max(file, config.UNPACK_MAX_TOTAL_BYTES);
  return {
    clamdConfig: { MaxFileSize: member, MaxScanSize: total, StreamMaxLength: member },
    clamdMaxStreamBytes: member,
    yaraMaxScanBytes: Math.max(yaraDefaultMaxScanBytes, member),
    unpackMaxMemberBytes: config.UNPACK_MAX_MEMBER_BYTES,
    unpackMaxTotalBytes: config.UNPACK_MAX_TOTAL_BYTES,
  };
}
