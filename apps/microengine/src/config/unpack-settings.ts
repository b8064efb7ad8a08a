import { z } from "zod";
import { booleanText, integer } from "./setting-values.js";

/** One mebibyte, in bytes. */
const mebibyte = 1024 * 1024;

/**
 * Seeing inside containers (`@engine/unpack`): on or off, and the bounds of one artifact's
 * walk. The limits carry ClamAV's names and defaults (MaxRecursion, MaxFiles, MaxFileSize,
 * MaxScanSize).
 */
export const unpackSettings = z.object({
  /**
   * Scan the members of archives and compressed files (zip, 7z, gzip, tar, ...) with YARA and
   * the backend modules, and with ClamAV those it cannot decode itself. Default true.
   */
  UNPACK: booleanText.default(true),
  /** Deepest member looked into, the artifact being depth 0 (MaxRecursion). Default 17. */
  UNPACK_MAX_DEPTH: integer(0, 100).default(17),
  /** Members per artifact, all depths (MaxFiles). Default 10,000. */
  UNPACK_MAX_MEMBERS: integer(1, 1_000_000).default(10_000),
  /**
   * Bytes one member may decode to (MaxFileSize). Default 100 MiB, or ARTIFACT_MAX_BYTES when
   * that is larger and this is unset.
   */
  UNPACK_MAX_MEMBER_BYTES: integer(1, 2 ** 40).default(100 * mebibyte),
  /**
   * Bytes all members of an artifact may decode to together (MaxScanSize). Default 400 MiB, or
   * ARTIFACT_MAX_BYTES when that is larger and this is unset.
   */
  UNPACK_MAX_TOTAL_BYTES: integer(1, 2 ** 40).default(400 * mebibyte),
});
