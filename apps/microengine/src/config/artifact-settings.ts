import { z } from "zod";
import { booleanText, byteSize, list } from "./setting-values.js";

/** Where artifacts may come from and answers may go, and how large artifacts may be. */
export const artifactSettings = z.object({
  /** Hosts artifacts may be downloaded from (comma list; `*.example.com` for subdomains). Default: none. */
  ARTIFACT_ALLOWED_HOSTS: list.default([]),
  /** Allow artifact hosts that resolve to private, loopback or link-local addresses. Default false. */
  ARTIFACT_ALLOW_PRIVATE_ADDRESSES: booleanText.default(false),
  /** Allow `file:` artifact URIs. Default false. */
  ARTIFACT_ALLOW_FILE_URIS: booleanText.default(false),
  /**
   * Largest artifact, in bytes or with a unit (`500M`, `2G`): downloads, the scan API body, the
   * files `scan` scans (`--max-file-size`). Each backend's own limit is raised to it (see
   * backend-byte-limits.ts). Default 100 MiB.
   */
  ARTIFACT_MAX_BYTES: byteSize(1, 2 ** 40).default(100 * 1024 * 1024),
  /** Hosts `response_url` may name (comma list; `*.example.com` for subdomains). Default: any public host. */
  RESPONSE_ALLOWED_HOSTS: list.optional(),
});
