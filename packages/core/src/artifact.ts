import { constants, createReadStream, type Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { z } from "zod";
import { ArtifactTooLargeError } from "./errors/artifact-too-large-error.js";
import { ArtifactUnavailableError } from "./errors/artifact-unavailable-error.js";
import { EngineError } from "./errors/engine-error.js";
import { InvalidOptionsError } from "./errors/invalid-options-error.js";
import { errorFromSignal } from "./scan-signal.js";

/** `"file"` for content to scan, `"url"` for a URL whose text is the content (as in the SDK). */
export type ArtifactKind = "file" | "url";

/** Optional facts about an artifact, validated by {@link artifactInfoSchema}. */
export const artifactInfoSchema = z.strictObject({
  /** Original file name, e.g. `"invoice.pdf"`; backends may use it (YARA `filename`). */
  filename: z.string().min(1).optional(),
  /** Declared MIME type, e.g. `"application/pdf"`. */
  mimetype: z.string().min(1).optional(),
  /** Declared SHA-256, 64 hex digits (stored lowercase). Not verified by the artifact itself. */
  sha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, "sha256 must be 64 hexadecimal digits")
    .transform((value) => value.toLowerCase())
    .optional(),
  /** Size in bytes, when known before reading. */
  size: z.number().int().nonnegative().optional(),
});

/** Optional facts about an artifact; see {@link artifactInfoSchema}. */
export type ArtifactInfo = z.input<typeof artifactInfoSchema>;

/** Options of {@link Artifact.bytes} and {@link Artifact.stream}. */
export interface ArtifactReadOptions {
  /** Stops the read; the stream is destroyed with a `ScanAbortedError`/`ScanTimeoutError`. */
  signal?: AbortSignal | undefined;
  /** Fails with `ArtifactTooLargeError` once more than this many bytes are read. */
  maxBytes?: number | undefined;
}

/**
 * Something to scan, read lazily: nothing is read until a backend asks, and a backend that
 * streams (ClamAV) never holds the content in memory. Build one with `artifactFromBytes`,
 * `artifactFromFile`, `artifactFromStream` or `artifactFromUrl`.
 */
export interface Artifact {
  /** `"file"` or `"url"` (a URL artifact's content is the URL text). */
  readonly kind: ArtifactKind;
  /** Original file name, when known. */
  readonly filename: string | undefined;
  /** Declared MIME type, when known. */
  readonly mimetype: string | undefined;
  /** Declared SHA-256 (lowercase hex), when known; not verified here. */
  readonly sha256: string | undefined;
  /** Size in bytes when known without reading; see also {@link Artifact.byteLength}. */
  readonly size: number | undefined;
  /** Local path of a file-backed artifact (for clamd `FILDES` or a native engine), else `undefined`. */
  readonly path: string | undefined;
  /** False for a stream artifact: its content can be read once only. */
  readonly replayable: boolean;
  /** Size in bytes, looking it up when cheap (a file's `stat`); `undefined` for an unsized stream. */
  byteLength(): Promise<number | undefined>;
  /** The whole content in memory. Do not mutate the returned bytes. */
  bytes(options?: ArtifactReadOptions): Promise<Uint8Array>;
  /** The content as a stream with back-pressure; errors are engine errors. */
  stream(options?: ArtifactReadOptions): Readable;
}

/** Default read size for file artifacts: 64 KiB. */
const fileChunkBytes = 64 * 1024;

type ChunkSource = (signal: AbortSignal | undefined) => AsyncIterable<Uint8Array>;

interface ArtifactParts {
  kind: ArtifactKind;
  info: z.output<typeof artifactInfoSchema>;
  path?: string;
  replayable: boolean;
  open: ChunkSource;
  byteLength: () => Promise<number | undefined>;
  readAll?: (options: ArtifactReadOptions) => Promise<Uint8Array>;
}

function tooLarge(limit: number, size?: number): ArtifactTooLargeError {
  return new ArtifactTooLargeError({
    message: `@engine/core: the artifact is larger than the limit of ${limit} bytes${size === undefined ? "" : ` (${size} bytes)`}`,
    hint: "Raise the size limit (maxBytes) or skip the artifact.",
  });
}

async function* limitChunks(
  source: AsyncIterable<Uint8Array>,
  options: ArtifactReadOptions,
): AsyncGenerator<Uint8Array> {
  let total = 0;
  for await (const chunk of source) {
    if (options.signal?.aborted) throw errorFromSignal(options.signal);
    total += chunk.byteLength;
    if (options.maxBytes !== undefined && total > options.maxBytes)
      throw tooLarge(options.maxBytes);
    if (chunk.byteLength > 0) yield chunk;
  }
}

class LazyArtifact implements Artifact {
  readonly kind: ArtifactKind;
  readonly filename: string | undefined;
  readonly mimetype: string | undefined;
  readonly sha256: string | undefined;
  readonly size: number | undefined;
  readonly path: string | undefined;
  readonly replayable: boolean;
  readonly #parts: ArtifactParts;

  constructor(parts: ArtifactParts) {
    this.kind = parts.kind;
    this.filename = parts.info.filename;
    this.mimetype = parts.info.mimetype;
    this.sha256 = parts.info.sha256;
    this.size = parts.info.size;
    this.path = parts.path;
    this.replayable = parts.replayable;
    this.#parts = parts;
  }

  byteLength(): Promise<number | undefined> {
    return this.#parts.byteLength();
  }

  async bytes(options: ArtifactReadOptions = {}): Promise<Uint8Array> {
    if (options.signal?.aborted) throw errorFromSignal(options.signal);
    if (this.#parts.readAll) return this.#parts.readAll(options);
    const chunks: Uint8Array[] = [];
    for await (const chunk of this.stream(options)) chunks.push(chunk as Uint8Array);
    return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks);
  }

  stream(options: ArtifactReadOptions = {}): Readable {
    const { signal } = options;
    const readable = Readable.from(limitChunks(this.#parts.open(signal), options), {
      objectMode: false,
      highWaterMark: fileChunkBytes,
    });
    if (signal) {
      const onAbort = (): void => {
        readable.destroy(errorFromSignal(signal));
      };
      if (signal.aborted) queueMicrotask(onAbort);
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        readable.once("close", () => signal.removeEventListener("abort", onAbort));
      }
    }
    return readable;
  }
}

function parseInfo(info: ArtifactInfo | undefined, factoryName: string) {
  const parsed = artifactInfoSchema.safeParse(info ?? {});
  if (!parsed.success) {
    throw new InvalidOptionsError({
      message: `@engine/core: ${factoryName}: invalid artifact info: ${z.prettifyError(parsed.error)}`,
      hint: "Artifact info accepts filename, mimetype, sha256 (64 hex digits) and size (bytes).",
      cause: parsed.error,
    });
  }
  return parsed.data;
}

function fromBuffer(
  kind: ArtifactKind,
  content: Uint8Array,
  info: ArtifactParts["info"],
): Artifact {
  return new LazyArtifact({
    kind,
    info: { ...info, size: content.byteLength },
    replayable: true,
    byteLength: async () => content.byteLength,
    open: async function* () {
      yield content;
    },
    readAll: async ({ maxBytes }) => {
      if (maxBytes !== undefined && content.byteLength > maxBytes) {
        throw tooLarge(maxBytes, content.byteLength);
      }
      return content;
    },
  });
}

/**
 * An artifact over bytes already in memory. The bytes are not copied; do not change them
 * while a scan runs.
 * @param bytes the content (`Buffer`, `Uint8Array`, or a string read as UTF-8)
 * @param info optional filename, mimetype, sha256 (size is taken from the bytes)
 */
export function artifactFromBytes(bytes: Uint8Array | string, info?: ArtifactInfo): Artifact {
  const content = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
  if (!(content instanceof Uint8Array)) {
    throw new InvalidOptionsError({
      message: "@engine/core: artifactFromBytes expects a Uint8Array, Buffer or string",
      hint: "Use artifactFromStream for streams and artifactFromFile for paths.",
    });
  }
  return fromBuffer("file", content, parseInfo(info, "artifactFromBytes"));
}

function fileError(path: string, cause: unknown): ArtifactUnavailableError {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const reason =
    code === "ENOENT"
      ? "does not exist"
      : code === "EACCES" || code === "EPERM"
        ? "is not readable by this process"
        : code === "EISDIR"
          ? "is a directory"
          : code === "ENOTREG"
            ? "is not a regular file (a FIFO, socket or device is never read)"
            : `could not be read (${code ?? String(cause)})`;
  return new ArtifactUnavailableError({
    message: `@engine/core: the file ${path} ${reason}`,
    hint: "Check the path and its permissions.",
    cause,
  });
}

/**
 * Opens a file for reading without ever blocking: `O_NONBLOCK` (a FIFO or a device swapped in
 * for the file would otherwise hold a thread of the pool), then only a regular file is kept.
 */
async function openRegularFile(path: string): Promise<{ handle: FileHandle; info: Stats }> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    if (!info.isFile()) throw Object.assign(new Error("not a regular file"), { code: "ENOTREG" });
    return { handle, info };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/**
 * An artifact over a local file. Nothing is opened until a backend reads it; it streams in
 * 64 KiB reads, exposes `path` (for clamd `FILDES` and native engines) and can be read
 * many times. A missing or unreadable file fails the read with `ArtifactUnavailableError`, and
 * so does anything but a regular file (a FIFO, socket or device is never opened blocking).
 * @param path the file's path
 * @param info optional filename (defaults to the base name), mimetype, sha256, size
 */
export function artifactFromFile(path: string, info?: ArtifactInfo): Artifact {
  if (typeof path !== "string" || path.length === 0) {
    throw new InvalidOptionsError({
      message: "@engine/core: artifactFromFile expects a non-empty path string",
    });
  }
  const parsed = parseInfo(info, "artifactFromFile");
  const filename = parsed.filename ?? path.split(/[\\/]/).pop();
  return new LazyArtifact({
    kind: "file",
    info: { ...parsed, ...(filename ? { filename } : {}) },
    path,
    replayable: true,
    byteLength: async () => {
      if (parsed.size !== undefined) return parsed.size;
      try {
        return (await stat(path)).size;
      } catch (error) {
        throw fileError(path, error);
      }
    },
    open: async function* (signal) {
      try {
        const { handle } = await openRegularFile(path);
        for await (const chunk of createReadStream(path, {
          fd: handle,
          highWaterMark: fileChunkBytes,
          signal,
        })) {
          yield chunk as Buffer;
        }
      } catch (error) {
        if (signal?.aborted) throw errorFromSignal(signal);
        throw fileError(path, error);
      }
    },
    readAll: async ({ signal, maxBytes }) => {
      // open + fstat + exact-size reads + close: fewer thread-pool trips than readFile for the
      // small files that most scans see.
      let handle: FileHandle | undefined;
      try {
        const opened = await openRegularFile(path);
        handle = opened.handle;
        const stats = opened.info; // one fstat: the regular-file check and the size
        if (maxBytes !== undefined && stats.size > maxBytes) throw tooLarge(maxBytes, stats.size);
        if (signal?.aborted) throw errorFromSignal(signal);
        if (stats.size === 0) return await handle.readFile({ signal }); // /proc-like files report 0
        const buffer = Buffer.allocUnsafe(stats.size);
        let filled = 0;
        while (filled < buffer.length) {
          const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === buffer.length ? buffer : buffer.subarray(0, filled);
      } catch (error) {
        if (signal?.aborted) throw errorFromSignal(signal);
        if (ArtifactTooLargeError.isInstance(error)) throw error;
        throw fileError(path, error);
      } finally {
        await handle?.close();
      }
    },
  });
}

/** What {@link artifactFromStream} accepts: a Node stream, a web stream, or an (async) iterable of byte chunks. */
export type ArtifactStreamSource =
  | Readable
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array | string>
  | Iterable<Uint8Array>;

/**
 * An artifact over a stream (an upload, a download). It can be read ONCE: a second read
 * fails with `ArtifactUnavailableError` (`replayable` is false), so a caller that needs two
 * reads spools it to a file first. Aborting a read destroys the source stream.
 * @param stream a Node `Readable`, a web `ReadableStream`, or an async iterable of bytes
 * @param info optional filename, mimetype, sha256, size (when the sender declared it)
 */
export function artifactFromStream(stream: ArtifactStreamSource, info?: ArtifactInfo): Artifact {
  const isWebStream = typeof (stream as ReadableStream | undefined)?.getReader === "function";
  const isIterable =
    typeof stream === "object" &&
    !(stream instanceof Uint8Array) &&
    stream !== null &&
    (Symbol.asyncIterator in stream || Symbol.iterator in stream);
  if (!isWebStream && !isIterable) {
    throw new InvalidOptionsError({
      message:
        "@engine/core: artifactFromStream expects a Readable, a ReadableStream or an iterable of byte chunks",
      hint: "Use artifactFromBytes for a Buffer or a string, artifactFromFile for a path.",
    });
  }
  const parsed = parseInfo(info, "artifactFromStream");
  let consumed = false;
  return new LazyArtifact({
    kind: "file",
    info: parsed,
    replayable: false,
    byteLength: async () => parsed.size,
    open: async function* (signal) {
      if (consumed) {
        throw new ArtifactUnavailableError({
          message: "@engine/core: this stream artifact was already read",
          hint: "A stream can be read once; spool it to a file (artifactFromFile) or buffer it (artifactFromBytes) to read it again.",
        });
      }
      consumed = true;
      const source: Readable = isWebStream
        ? Readable.fromWeb(stream as import("node:stream/web").ReadableStream<Uint8Array>)
        : stream instanceof Readable
          ? stream
          : Readable.from(stream as AsyncIterable<Uint8Array> | Iterable<Uint8Array>);
      const onAbort = (): void => {
        source.destroy(signal ? errorFromSignal(signal) : undefined);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const chunk of source) {
          yield typeof chunk === "string" ? Buffer.from(chunk, "utf8") : (chunk as Uint8Array);
        }
      } catch (error) {
        if (signal?.aborted) throw errorFromSignal(signal);
        // A source that enforces its own limits (ArtifactTooLargeError) keeps its typed error.
        if (EngineError.isInstance(error)) throw error;
        throw new ArtifactUnavailableError({
          message: `@engine/core: the artifact stream failed: ${(error as Error)?.message ?? String(error)}`,
          cause: error,
        });
      } finally {
        signal?.removeEventListener("abort", onAbort);
        if (!source.destroyed) source.destroy();
      }
    },
  });
}

const urlSchema = z.url({ protocol: /^https?$/ });

/**
 * A URL artifact (`kind: "url"`): its content is the URL text in UTF-8, exactly as the
 * PolySwarm SDK hands URL artifacts to engines. Only `http:` and `https:` URLs are accepted.
 * @param url the URL to scan
 * @param info optional mimetype, sha256
 */
export function artifactFromUrl(url: string | URL, info?: ArtifactInfo): Artifact {
  const text = typeof url === "string" ? url : url.href;
  const parsed = urlSchema.safeParse(text);
  if (!parsed.success) {
    throw new InvalidOptionsError({
      message: `@engine/core: artifactFromUrl expects an http(s) URL, got ${JSON.stringify(text).slice(0, 200)}`,
      cause: parsed.error,
    });
  }
  return fromBuffer("url", Buffer.from(text, "utf8"), parseInfo(info, "artifactFromUrl"));
}
