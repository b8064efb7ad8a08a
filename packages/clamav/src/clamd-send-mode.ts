import { stat } from "node:fs/promises";
import { type Artifact, ArtifactTooLargeError } from "@engine/core";
import type { ResolvedClamdClientOptions } from "./clamd-client-options.js";
import type { ClamdEndpoint } from "./clamd-connection.js";
import { loadFileDescriptorPassing } from "./fildes-scan.js";

/** How a scan reaches clamd. */
export type ClamdScanMode = "instream" | "path" | "fildes";

/** How an artifact will be sent, with what was learnt deciding it. */
export interface SendPlan {
  mode: ClamdScanMode;
  /** Size in bytes, when known before sending. */
  size: number | undefined;
  /** The whole content, already read (a small file's; sent in one write when it fits a chunk). */
  small?: Uint8Array;
  /** `fildes` of content held in memory: these bytes go to clamd as a memory file. */
  memory?: Uint8Array;
}

/**
 * Decides how to send an artifact to clamd, with as few file-system trips as possible (each
 * costs ~0.1 ms on the thread pool, as much as clamd's scan of a small file):
 * - a local regular file, on a unix-socket clamd with `scanLocalFiles`: `fildes` when
 *   `passFileDescriptors` and the addon is installed (no `stat`: the descriptor's own is used),
 *   else `path` (clamd opens it; one `stat`);
 * - content held in memory up to `memoryFileMaxBytes` (no path), on a unix socket with the
 *   addon: `fildes` of a memory file;
 * - anything else: `instream`, with one bounded read that returns a small file whole or tells
 *   that it is large.
 */
export async function chooseSendMode(
  artifact: Artifact,
  endpoint: ClamdEndpoint,
  options: Pick<
    ResolvedClamdClientOptions,
    "scanLocalFiles" | "passFileDescriptors" | "chunkBytes" | "memoryFileMaxBytes"
  >,
  signal: AbortSignal,
): Promise<SendPlan> {
  const path = artifact.path;
  if (
    path !== undefined &&
    options.scanLocalFiles &&
    "socket" in endpoint &&
    !/[\0\n\r]/.test(path)
  ) {
    const passing = options.passFileDescriptors && (await loadFileDescriptorPassing());
    // A file: no stat, FILDES straight away. It is opened on the thread pool without blocking (a
    // FIFO never waits for a writer) and refused unless it is a regular file within
    // maxStreamBytes by its descriptor's size (the same ArtifactUnavailableError the stream would
    // give); clamd reads it through the descriptor.
    if (passing && artifact.kind === "file") return { mode: "fildes", size: artifact.size };
    const stats = await stat(path).catch(() => undefined); // a read error surfaces when streaming
    // A size of 0 is streamed: clamd would read nothing, though procfs and sysfs files that say
    // so have content.
    if (stats?.isFile() && stats.size > 0) {
      const mode = passing ? "fildes" : "path";
      return { mode, size: artifact.size ?? stats.size };
    }
  }
  const plan = await instreamPlan(artifact, options, signal);
  return (await inMemoryPlan(artifact, plan, endpoint, options, signal)) ?? plan;
}

/** `INSTREAM`, with one bounded read that returns a small unsized artifact whole. */
async function instreamPlan(
  artifact: Artifact,
  options: Pick<ResolvedClamdClientOptions, "chunkBytes">,
  signal: AbortSignal,
): Promise<SendPlan> {
  if (artifact.size !== undefined || artifact.path === undefined) {
    return { mode: "instream", size: artifact.size ?? (await artifact.byteLength()) };
  }
  try {
    const small = await artifact.bytes({ signal, maxBytes: options.chunkBytes });
    return { mode: "instream", size: small.byteLength, small };
  } catch (error) {
    if (!ArtifactTooLargeError.isInstance(error)) throw error;
    return { mode: "instream", size: await artifact.byteLength() };
  }
}

/**
 * Content held in memory, passed as a memory file (`FILDES`) instead of streamed: an artifact
 * with no path up to `memoryFileMaxBytes`, on a unix socket with the addon, and only when its
 * bytes can be had again (a replayable artifact, or a small one already read), so that it can
 * still be streamed if the memory file cannot be passed. `undefined`: stream as planned.
 */
async function inMemoryPlan(
  artifact: Artifact,
  plan: SendPlan,
  endpoint: ClamdEndpoint,
  options: Pick<ResolvedClamdClientOptions, "passFileDescriptors" | "memoryFileMaxBytes">,
  signal: AbortSignal,
): Promise<SendPlan | undefined> {
  const { size } = plan;
  if (
    artifact.path !== undefined ||
    !("socket" in endpoint) ||
    !options.passFileDescriptors ||
    size === undefined ||
    options.memoryFileMaxBytes === 0 ||
    size > options.memoryFileMaxBytes ||
    !(plan.small !== undefined || artifact.replayable) ||
    !(await loadFileDescriptorPassing())
  )
    return undefined;
  try {
    const memory =
      plan.small ?? (await artifact.bytes({ signal, maxBytes: options.memoryFileMaxBytes }));
    return { ...plan, mode: "fildes", memory };
  } catch (error) {
    if (ArtifactTooLargeError.isInstance(error)) return undefined; // larger than it said: streamed
    throw error;
  }
}
