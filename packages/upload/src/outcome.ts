import type { ScanResult } from "@engine/core";
import type { UploadProblem, UploadProblemCode } from "./problems.js";
import type { StorageLocation } from "./storage/storage-sink.js";

/** One file of a request and what became of it. */
export interface UploadedFile {
  /** A random id (UUID) the guard gave it: its name in storage. */
  id: string;
  /** The form field it came in. */
  field: string;
  /** The client's file name, as sent: data to show, never a path. */
  filename: string;
  /** The type the client declared (never trusted). */
  declaredType: string;
  /**
   * Its type by content: magic bytes (`file-type`), else a text type the allow-list names
   * for text content, else `application/octet-stream` (or `text/plain` for text).
   */
  type: string;
  /** Bytes received (up to where it stopped, when it was cut short). */
  size: number;
  /** Kept (`accepted`) or not (`refused`). */
  decision: "accepted" | "refused";
  /** Why it was refused. */
  code?: UploadProblemCode | undefined;
  /** The scanner's answer, when it answered. */
  scan?: ScanResult | undefined;
  /** Where it is stored (an accepted file, once committed). */
  stored?: StorageLocation | undefined;
  /** Where it is quarantined (a refused file, when a quarantine sink is set). */
  quarantined?: StorageLocation | undefined;
}

/** Form fields (text parts) by name; a name sent more than once gives an array. */
export type UploadFields = Record<string, string | string[]>;

/** What a request came to: kept files, or a problem to answer (nothing kept). */
export type UploadOutcome =
  | {
      ok: true;
      fields: UploadFields;
      /** Every file; with `onRefusedFile: "per-file"`, refused ones are listed too. */
      files: UploadedFile[];
    }
  | {
      ok: false;
      /** The RFC 9457 body to answer with (its `status` is the HTTP status). */
      problem: UploadProblem;
      fields: UploadFields;
      files: UploadedFile[];
      /** The internal cause, for logs only (never sent to the client). */
      cause?: unknown;
      /**
       * True when the body was not read to its end (a limit, an abort): answer with
       * `Connection: close` so that no further request is read from that socket.
       */
      bodyUnread: boolean;
    };
