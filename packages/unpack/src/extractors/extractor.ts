import type { Artifact } from "@engine/core";
import type { ContainerFormat } from "../container-formats.js";
import type { UnpackLimits } from "../unpack-options.js";

/** Why something inside a container was not looked into (the answer's `SKIPPED:<code>`). */
export type SkipCode = "ENCRYPTED" | "LIMITS" | "UNSUPPORTED" | "CORRUPT";

/** The limits a `LIMITS` skip names. */
export type LimitName =
  | "maxDepth"
  | "maxMembers"
  | "maxMemberBytes"
  | "maxTotalBytes"
  | "maxRatio"
  | "overlappingEntries";

/**
 * Thrown by an extractor or the byte counters: the container (thrown by `entries`) or the
 * entry (thrown while its content is read) is not looked into, for `code`.
 */
export class UnpackSkip extends Error {
  constructor(
    readonly code: SkipCode,
    message: string,
    readonly limit?: LimitName,
  ) {
    super(message);
    this.name = "UnpackSkip";
  }
}

/** A container an extractor reads: a replayable artifact (bytes in memory, or a file). */
export interface ContainerSource {
  artifact: Artifact;
  /** Its size in bytes. */
  size: number;
  /** Its name (the root's file name, or the member's last path part), for formats that need one. */
  name: string;
}

/** What an extractor is given besides the container. */
export interface ExtractContext {
  /** Fires at the unpack's deadline or the caller's abort: stop at once. */
  signal: AbortSignal;
  /** The unpack's bounds (whole-member extractors cap what they produce with them). */
  limits: UnpackLimits;
  /** Bytes the root may still decode to (`maxTotalBytes` less what was decoded). */
  remainingBytes(): number;
}

/** One entry of a container, in the container's order. */
export type ExtractedEntry =
  | {
      kind: "file";
      /** Its name inside the container (data, never used as a path on disk). */
      name: string;
      /** Its bytes in the container, when known (for the ratio check); else the container's size counts. */
      compressedSize?: number | undefined;
      /** How it is stored, when the format has methods (`deflate`, `ppmd`, `lzma`, `bzip2`, ...). */
      method?: string | undefined;
      /**
       * True for content a standard reader of the format does not show: data appended after
       * the end, a zip entry missing from the central directory, a second concatenated archive.
       */
      hidden?: boolean | undefined;
      /**
       * Its content. Read it whole before asking for the next entry; stopping early (a limit)
       * returns the iterator, and the extractor skips the rest of it.
       */
      open(): AsyncIterable<Uint8Array>;
    }
  | {
      kind: "skipped";
      name: string;
      code: SkipCode;
      reason: string;
      limit?: LimitName | undefined;
    };

/**
 * Reads one container format. `entries` yields the entries in order; it throws `UnpackSkip`
 * for a container it cannot look into as a whole (encrypted headers, an unsupported method,
 * corrupt), and may throw anything for a corrupt one.
 */
export interface Extractor {
  readonly format: ContainerFormat;
  entries(source: ContainerSource, context: ExtractContext): AsyncIterable<ExtractedEntry>;
}
