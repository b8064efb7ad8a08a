import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Duplex, Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import {
  type Artifact,
  ArtifactTooLargeError,
  ArtifactUnavailableError,
  artifactFromBytes,
  artifactFromFile,
  EngineError,
  errorFromSignal,
} from "@engine/core";
import { type Agent, request } from "undici";
import { errorMessage } from "../operations/error-message.js";
import {
  type AddressPolicy,
  createGuardedAgent,
  isAllowedHost,
  literalAddressRefusal,
} from "./address-policy.js";
import { contentDecoders } from "./content-coding.js";

/** Where artifacts may come from, and how much of them. */
export interface FetchPolicy extends AddressPolicy {
  allowedHosts: readonly string[];
  allowFileUris: boolean;
  maxBytes: number;
  temporaryDirectory?: string;
  /**
   * Artifacts whose size is known up front and at most this many bytes are kept in memory
   * instead of a temp file (each file costs several file-system trips). Default 1 MiB.
   */
  memoryLimitBytes?: number;
}

/** A downloaded artifact on disk; `dispose()` deletes it (also call it on every error path). */
export interface FetchedArtifact {
  artifact: Artifact;
  bytes: number;
  sha256: string;
  dispose(): Promise<void>;
}

const maximumRedirects = 5;

/**
 * A refused download. `publicReason` goes into the answer (no addresses or paths); `detail`
 * (hosts, resolved addresses) only into the logs.
 */
function refused(publicReason: string, detail = publicReason): ArtifactUnavailableError {
  return new ArtifactUnavailableError({
    message: `@engine/microengine: artifact download refused: ${detail}`,
    hint: "Allow the host with ARTIFACT_ALLOWED_HOSTS (and ARTIFACT_ALLOW_PRIVATE_ADDRESSES for private networks).",
    publicMessage: `artifact download refused: ${publicReason}`,
  });
}

function tooLarge(maxBytes: number, size?: number): ArtifactTooLargeError {
  return new ArtifactTooLargeError({
    message: `@engine/microengine: the artifact is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)${size === undefined ? "" : `: ${size} bytes`}`,
    hint: "Raise ARTIFACT_MAX_BYTES to scan larger artifacts.",
    publicMessage: `the artifact is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)`,
  });
}

class ByteCounter extends Transform {
  bytes = 0;
  readonly hash = createHash("sha256");
  constructor(private readonly maxBytes: number) {
    super();
  }
  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null, data?: Buffer) => void,
  ): void {
    this.bytes += chunk.length;
    if (this.bytes > this.maxBytes) {
      callback(tooLarge(this.maxBytes));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }
}

let fileCounter = 0;

async function toTemporaryFile(
  source: NodeJS.ReadableStream,
  policy: FetchPolicy & { sharedDirectory?: string },
  signal: AbortSignal,
  info: { filename?: string; mimetype?: string },
  decoders: Duplex[] = [],
): Promise<FetchedArtifact> {
  // One private directory per engine (or per download without one); one file per artifact.
  const directory =
    policy.sharedDirectory ??
    (await mkdtemp(join(policy.temporaryDirectory ?? tmpdir(), "engine-artifact-")));
  fileCounter += 1;
  const path = join(directory, `artifact-${process.pid}-${fileCounter}`);
  const dispose = () =>
    rm(policy.sharedDirectory ? path : directory, { recursive: true, force: true });
  try {
    const counter = new ByteCounter(policy.maxBytes);
    // Decoded first (a content coding): the cap and the hash are on the artifact itself.
    await pipeline([source, ...decoders, counter, createWriteStream(path, { mode: 0o600 })], {
      signal,
    });
    const sha256 = counter.hash.digest("hex");
    return {
      artifact: artifactFromFile(path, { ...info, sha256, size: counter.bytes }),
      bytes: counter.bytes,
      sha256,
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}

/** Reads a small body whose size is known into memory, with the same cap and hash. */
async function toMemory(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  maxBytes: number,
  info: { filename?: string; mimetype?: string },
): Promise<FetchedArtifact> {
  // The chunks are the body's own (fresh per socket read): kept as they are and copied once,
  // into the artifact (a 1 MB download was copied twice, which showed in GC time).
  const chunks: Uint8Array[] = [];
  let total = 0;
  const hash = createHash("sha256");
  for await (const chunk of source) {
    total += chunk.byteLength;
    if (total > maxBytes) throw tooLarge(maxBytes);
    hash.update(chunk);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks, total);
  const sha256 = hash.digest("hex");
  return {
    artifact: artifactFromBytes(bytes, { ...info, sha256 }),
    bytes: bytes.length,
    sha256,
    dispose: async () => {},
  };
}

/**
 * Reads a `data:` URL exactly as WHATWG `fetch` does (the data URL processor of the Fetch
 * standard, as implemented by Node's own `fetch`): `;BASE64` and `; base64` are base64,
 * percent-escapes are decoded before base64, whitespace inside base64 is skipped, and a body
 * that is not valid base64 is an error, never zero bytes. Any other reading would let a sender
 * make the engine scan other bytes than the marketplace and every other client see.
 */
async function decodeDataUri(
  url: URL,
  maxBytes: number,
): Promise<{ bytes: Buffer; mimetype?: string }> {
  // Percent-encoding takes at most three characters a byte: anything longer is too large.
  if (url.href.length > maxBytes * 3 + 1024) throw tooLarge(maxBytes);
  let response: Response;
  try {
    // Node's fetch only for data: (no network): the caller checked the scheme.
    response = await fetch(url.href);
  } catch (error) {
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: malformed data: URI (${(error as Error)?.cause instanceof Error ? ((error as Error).cause as Error).message : String(error)})`,
      hint: "A data: URI is decoded as WHATWG fetch decodes it: base64 must be valid.",
      publicMessage: "malformed data: URI",
      cause: error,
    });
  }
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > maxBytes) throw tooLarge(maxBytes, bytes.length);
  const mimetype = response.headers.get("content-type")?.split(";")[0]?.trim();
  return { bytes, ...(mimetype ? { mimetype } : {}) };
}

/** A URI as the WHATWG URL parser reads it (the scheme lowercased, tabs and newlines removed). */
function parseUri(uri: string): URL {
  try {
    return new URL(uri);
  } catch (error) {
    throw new ArtifactUnavailableError({
      message: `@engine/microengine: the artifact URI is not a URL: ${(error as Error).message}`,
      publicMessage: "the artifact URI is not a URL",
      cause: error,
    });
  }
}

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
    this.#directory ??= mkdtemp(
      join(this.#policy.temporaryDirectory ?? tmpdir(), "engine-artifacts-"),
    ).catch((error: unknown) => {
      this.#directory = undefined; // a full disk now must not fail every fetch later
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: cannot create a temp directory: ${(error as Error).message}`,
        cause: error,
      });
    });
    const policy = { ...this.#policy, sharedDirectory: await this.#directory };
    const memoryLimit = policy.memoryLimitBytes ?? 1024 * 1024;
    const info = options.mimetype ? { mimetype: options.mimetype } : {};
    let fetched: FetchedArtifact;
    try {
      const url = parseUri(uri);
      if (url.protocol === "data:") {
        const decoded = await decodeDataUri(url, policy.maxBytes);
        const dataInfo = {
          ...info,
          ...(decoded.mimetype && !options.mimetype ? { mimetype: decoded.mimetype } : {}),
        };
        fetched =
          decoded.bytes.length <= memoryLimit
            ? await toMemory([decoded.bytes], policy.maxBytes, dataInfo)
            : await toTemporaryFile(Readable.from([decoded.bytes]), policy, signal, dataInfo);
      } else if (url.protocol === "file:") {
        if (!policy.allowFileUris) throw refused("file: URIs are off (ARTIFACT_ALLOW_FILE_URIS)");
        let path: string;
        try {
          path = fileURLToPath(url);
        } catch (error) {
          throw new ArtifactUnavailableError({
            message: `@engine/microengine: malformed file: URI: ${(error as Error).message}`,
            publicMessage: "malformed file: URI",
            cause: error,
          });
        }
        const size = (
          await stat(path).catch((error) => {
            throw new ArtifactUnavailableError({
              message: `@engine/microengine: cannot read ${path}`,
              cause: error,
            });
          })
        ).size;
        if (size > policy.maxBytes) throw tooLarge(policy.maxBytes, size);
        fetched = await toTemporaryFile(createReadStream(path), policy, signal, {
          ...info,
          filename: path.split("/").pop() ?? "",
        });
      } else {
        fetched = await download(url, policy, this.#agent, signal, info, memoryLimit);
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // The temp directory was removed under us (tmpfiles cleaning): the next fetch makes it again.
      if (code === "ENOENT") this.#directory = undefined;
      if (signal.aborted) throw errorFromSignal(signal, "microengine");
      if (EngineError.isInstance(error)) throw error;
      if (code === "EPRIVATEADDRESS")
        throw refused("the host resolves to a private address", (error as Error).message);
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: the artifact download failed: ${errorMessage(error)}`,
        cause: error,
      });
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

  /** Closes kept connections and removes the temp directory. */
  async close(): Promise<void> {
    await this.#agent.close().catch(() => {});
    const directory = await this.#directory?.catch(() => undefined);
    if (directory) await rm(directory, { recursive: true, force: true });
  }
}

async function download(
  uri: URL,
  policy: FetchPolicy & { sharedDirectory?: string },
  agent: Agent,
  signal: AbortSignal,
  info: { mimetype?: string },
  memoryLimit: number,
): Promise<FetchedArtifact> {
  let current = uri;
  for (let redirects = 0; ; redirects += 1) {
    if (current.protocol !== "https:" && current.protocol !== "http:")
      throw refused(`${current.protocol} is not allowed`);
    if (!isAllowedHost(current.hostname, policy.allowedHosts))
      throw refused(
        "the host is not in ARTIFACT_ALLOWED_HOSTS",
        `host ${current.hostname} is not in ARTIFACT_ALLOWED_HOSTS`,
      );
    const literalRefusal = literalAddressRefusal(current, policy);
    if (literalRefusal) throw refused(literalRefusal, `${current.hostname}: ${literalRefusal}`);
    const response = await request(current, {
      dispatcher: agent,
      signal,
      maxRedirections: 0,
      // Asked for as it is; a server that encodes anyway is decoded below, or refused.
      headers: { "accept-encoding": "identity" },
    } as Parameters<typeof request>[1]);
    if (response.statusCode >= 300 && response.statusCode < 400 && response.headers.location) {
      await response.body.dump();
      if (redirects >= maximumRedirects) throw refused(`more than ${maximumRedirects} redirects`);
      current = new URL(String(response.headers.location), current);
      continue;
    }
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new ArtifactUnavailableError({
        message: `@engine/microengine: the artifact server answered HTTP ${response.statusCode}`,
        publicMessage: `the artifact server answered HTTP ${response.statusCode}`,
      });
    }
    const declared = Number(response.headers["content-length"]);
    if (Number.isFinite(declared) && declared > policy.maxBytes) {
      await response.body.dump({ limit: 0 }).catch(() => {});
      throw tooLarge(policy.maxBytes, declared);
    }
    let decoders: Duplex[];
    try {
      decoders = contentDecoders(response.headers["content-encoding"], policy.maxBytes);
    } catch (error) {
      await response.body.dump({ limit: 0 }).catch(() => {});
      throw error;
    }
    const filename = current.pathname.split("/").pop() || undefined;
    const fileInfo = { ...info, ...(filename ? { filename } : {}) };
    // An encoded body's decoded size is unknown: it goes through a temp file, capped.
    if (decoders.length === 0 && Number.isFinite(declared) && declared <= memoryLimit)
      return await toMemory(response.body, policy.maxBytes, fileInfo);
    return await toTemporaryFile(response.body, policy, signal, fileInfo, decoders);
  }
}
