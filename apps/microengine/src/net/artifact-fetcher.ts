import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { ArtifactUnavailableError, EngineError, errorFromSignal } from "@engine/core";
import type { Agent } from "undici";
import { errorMessage } from "../operations/error-message.js";
import { createGuardedAgent } from "./address-policy.js";
import {
  type FetchedArtifact,
  type FetchPolicy,
  toMemory,
  toTemporaryFile,
} from "./artifact-sinks.js";
import { decodeDataUri, parseUri } from "./data-uri.js";
import { refused, tooLarge } from "./fetch-errors.js";
import { download } from "./http-download.js";

export type { FetchedArtifact, FetchPolicy } from "./artifact-sinks.js";

/** Options of one fetch. */
export interface FetchOptions {
  signal: AbortSignal;
  expectedSha256?: string | null | undefined;
  mimetype?: string | null | undefined;
}

/**
 * Fetches bounties' artifacts (never large ones into memory): `https`/`http` only from allowed
 * hosts and public addresses (checked after DNS resolution, on the address connected to, and at
 * every redirect), `data:` URIs, `file:` only when allowed. The size cap is enforced while
 * streaming, not only by Content-Length; the sha256 is computed on the way and checked when one
 * is expected. Small artifacts of known size stay in memory, others go to a private temp file.
 * One fetcher keeps its connections alive (one guarded agent) and its temp directory.
 * Throws typed errors: `ArtifactUnavailableError` (refused, failed, sha256 mismatch),
 * `ArtifactTooLargeError`, or the signal's reason (timeout).
 */
export class ArtifactFetcher {
  readonly #policy: FetchPolicy;
  readonly #agent: Agent;
  #directory: Promise<string> | undefined;

  constructor(policy: FetchPolicy) {
    this.#policy = policy;
    this.#agent = createGuardedAgent(policy);
  }

  /** Fetches one artifact; dispose the result (also on error paths, which this does itself). */
  async fetch(uri: string, options: FetchOptions): Promise<FetchedArtifact> {
    const { signal } = options;
    const policy = { ...this.#policy, sharedDirectory: await this.#temporaryDirectory() };
    const info = options.mimetype ? { mimetype: options.mimetype } : {};
    let fetched: FetchedArtifact;
    try {
      const url = parseUri(uri);
      fetched =
        url.protocol === "data:"
          ? await fromDataUri(url, policy, signal, info)
          : url.protocol === "file:"
            ? await fromFileUri(url, policy, signal, info)
            : await download(url, policy, this.#agent, signal, info, memoryLimitOf(policy));
    } catch (error) {
      // The temp directory was removed under us (tmpfiles cleaning): the next fetch makes it again.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") this.#directory = undefined;
      throw fetchFailure(error, signal);
    }
    if (options.expectedSha256 && fetched.sha256 !== options.expectedSha256.toLowerCase()) {
      await fetched.dispose();
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: sha256 mismatch: the bounty says ${options.expectedSha256}, the artifact is ${fetched.sha256}`,
        hint: "The artifact changed or was tampered with; it was not scanned.",
        publicMessage: `sha256 mismatch: the artifact is ${fetched.sha256}`,
      });
    }
    return fetched;
  }

  /** The fetcher's private temp directory, made on first use (and again after a failure). */
  #temporaryDirectory(): Promise<string> {
    this.#directory ??= mkdtemp(
      join(this.#policy.temporaryDirectory ?? tmpdir(), "engine-artifacts-"),
    ).catch((error: unknown) => {
      this.#directory = undefined; // a full disk now must not fail every fetch later
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: cannot create a temp directory: ${errorMessage(error)}`,
        cause: error,
      });
    });
    return this.#directory;
  }

  /** Closes kept connections and removes the temp directory. */
  async close(): Promise<void> {
    await this.#agent.close().catch(() => {});
    const directory = await this.#directory?.catch(() => undefined);
    if (directory) await rm(directory, { recursive: true, force: true });
  }
}

type FetchInfo = { mimetype?: string };
type SharedPolicy = FetchPolicy & { sharedDirectory?: string };

/** Artifacts of known size up to this many bytes stay in memory (default 1 MiB). */
function memoryLimitOf(policy: FetchPolicy): number {
  return policy.memoryLimitBytes ?? 1024 * 1024;
}

/** A `data:` URI's artifact (its own MIME type unless the bounty gave one). */
async function fromDataUri(
  url: URL,
  policy: SharedPolicy,
  signal: AbortSignal,
  info: FetchInfo,
): Promise<FetchedArtifact> {
  const decoded = await decodeDataUri(url, policy.maxBytes);
  const dataInfo = {
    ...info,
    ...(decoded.mimetype && !info.mimetype ? { mimetype: decoded.mimetype } : {}),
  };
  return decoded.bytes.length <= memoryLimitOf(policy)
    ? await toMemory([decoded.bytes], policy.maxBytes, dataInfo)
    : await toTemporaryFile(Readable.from([decoded.bytes]), policy, signal, dataInfo);
}

/** A `file:` URI's artifact, copied to a temp file (only with ARTIFACT_ALLOW_FILE_URIS). */
async function fromFileUri(
  url: URL,
  policy: SharedPolicy,
  signal: AbortSignal,
  info: FetchInfo,
): Promise<FetchedArtifact> {
  if (!policy.allowFileUris) throw refused("file: URIs are off (ARTIFACT_ALLOW_FILE_URIS)");
  let path: string;
  try {
    path = fileURLToPath(url);
  } catch (error) {
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: malformed file: URI: ${errorMessage(error)}`,
      publicMessage: "malformed file: URI",
      cause: error,
    });
  }
  const { size } = await stat(path).catch((error) => {
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: cannot read ${path}`,
      cause: error,
    });
  });
  if (size > policy.maxBytes) throw tooLarge(policy.maxBytes, size);
  return await toTemporaryFile(createReadStream(path), policy, signal, {
    ...info,
    filename: path.split("/").pop() ?? "",
  });
}

/** A fetch's failure as a typed error: the signal's reason, an engine error, or unavailable. */
function fetchFailure(error: unknown, signal: AbortSignal): EngineError {
  if (signal.aborted) return errorFromSignal(signal, "microengine");
  if (EngineError.isInstance(error)) return error;
  if ((error as NodeJS.ErrnoException).code === "EPRIVATEADDRESS")
    return refused("the host resolves to a private address", errorMessage(error));
  return new ArtifactUnavailableError({
    message: `@engine/microengine: the artifact download failed: ${errorMessage(error)}`,
    cause: error,
  });
}
