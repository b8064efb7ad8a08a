import { z } from "zod";

/** The longest timer these options may ask for: 24 hours (Node's timers overflow past 2^31-1 ms). */
const maximumTimerMs = 24 * 60 * 60 * 1000;

/**
 * Options of `ClamdClient` (and the connection part of `createClamavScanner`). Give either
 * `socket` (a unix socket path) or `host`/`port` (TCP); with neither, `127.0.0.1:3310`.
 */
export const clamdConnectionOptionsSchema = z.strictObject({
  /** Unix socket path of a local clamd, e.g. `/run/clamav/clamd.ctl`. */
  socket: z.string().min(1).optional(),
  /** TCP host. Default `"127.0.0.1"` when `socket` is not given. */
  host: z.string().min(1).optional(),
  /** TCP port. Default 3310. */
  port: z.number().int().min(1).max(65535).optional(),
  /** Time to establish a connection, in ms. Default 2000. */
  connectTimeoutMs: z.number().int().positive().max(maximumTimerMs).default(2000),
  /**
   * Longest silence from clamd while it scans or while we wait for it to read, in ms.
   * Default 60000 (a 2 GB stream is scanned in about 30 s on 2 cores).
   */
  readTimeoutMs: z.number().int().positive().max(maximumTimerMs).default(60_000),
  /** Bytes per `INSTREAM` chunk. Default 64 KiB (the SDK used 1 KiB). */
  chunkBytes: z
    .number()
    .int()
    .min(1024)
    .max(16 * 1024 * 1024)
    .default(64 * 1024),
  /**
   * Largest artifact we send, in bytes; it should match clamd's `StreamMaxLength`
   * (default 100 MiB there and here). A larger known size fails before sending; an unsized
   * stream fails as soon as it passes the limit. Never truncated.
   */
  maxStreamBytes: z
    .number()
    .int()
    .positive()
    .default(100 * 1024 * 1024),
  /** Kept-open `IDSESSION` connections for scans (and the most concurrent scans). Default 4. */
  maxConnections: z.number().int().min(1).max(64).default(4),
  /** Close kept connections idle this long, in ms; below clamd's `IdleTimeout` (30 s). Default 10000. */
  idleTimeoutMs: z.number().int().positive().max(maximumTimerMs).default(10_000),
  /**
   * On a unix socket, let clamd open local files itself (`SCAN <path>`) instead of
   * streaming them. clamd must be able to read the file; when it cannot, we stream.
   * Default true.
   */
  scanLocalFiles: z.boolean().default(true),
  /**
   * On a unix socket, pass local files to clamd as open file descriptors (`FILDES`), which
   * works whatever clamd's permissions on the path. Needs the optional `@engine/clamav-native`
   * addon; without it, `SCAN <path>` or `INSTREAM`. Default true.
   */
  passFileDescriptors: z.boolean().default(true),
  /**
   * On a unix socket with `passFileDescriptors` and the addon, an artifact held in memory (bytes,
   * or a small stream already read) up to this many bytes goes to clamd as a sealed memory file
   * by `FILDES` instead of `INSTREAM`: clamd scans it without spooling it to a temporary file
   * (about 1.3-1.6x the small-file rate). Larger ones are streamed; 0 streams them all. Default
   * 1 MiB (the copy is made on the calling thread, so it stays small).
   */
  memoryFileMaxBytes: z
    .number()
    .int()
    .min(0)
    .max(16 * 1024 * 1024)
    .default(1024 * 1024),
});

/** Rejects options that name both a unix socket and a TCP host/port. */
export function hasOneEndpoint(options: {
  socket?: string | undefined;
  host?: string | undefined;
  port?: number | undefined;
}): boolean {
  return !(options.socket && (options.host || options.port));
}

/** The message for options failing {@link hasOneEndpoint}. */
export const oneEndpointMessage = "give either socket or host/port, not both";

/** {@link clamdConnectionOptionsSchema}, refined so that one endpoint is given. */
export const clamdClientOptionsSchema = clamdConnectionOptionsSchema.refine(hasOneEndpoint, {
  message: oneEndpointMessage,
});

/** Options of `ClamdClient`; see {@link clamdClientOptionsSchema}. */
export type ClamdClientOptions = z.input<typeof clamdClientOptionsSchema>;
/** Validated options with defaults applied. */
export type ResolvedClamdClientOptions = z.output<typeof clamdClientOptionsSchema>;
