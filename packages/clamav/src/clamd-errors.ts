import {
  ArtifactTooLargeError,
  BackendUnavailableError,
  EngineError,
  ProtocolError,
  ScanTimeoutError,
} from "@engine/core";
import {
  ClamdConnectionFailure,
  type ClamdEndpoint,
  describeEndpoint,
} from "./clamd-connection.js";
import { parseClamdReply } from "./clamd-reply.js";

// How the clamd client's failures become engine errors: one place for the wording, the hints
// and the error classes (socket failures, size refusals, replies clamd should not give).

/** A failure to reach or talk to clamd (`command` is what we sent), as a typed engine error. */
export function clamdConnectionError(
  endpoint: ClamdEndpoint,
  error: unknown,
  command: string,
): EngineError {
  if (EngineError.isInstance(error)) return error;
  const where = describeEndpoint(endpoint);
  const target =
    "socket" in endpoint ? "socket (CLAMD_SOCKET)" : "host and port (CLAMD_HOST, CLAMD_PORT)";
  if (error instanceof ClamdConnectionFailure) {
    switch (error.kind) {
      case "connect-failed":
      case "connect-timeout":
        return new BackendUnavailableError({
          message: `@engine/clamav: cannot connect to clamd at ${where}: ${error.message}`,
          hint: `Start clamd, or point the scanner at a running one with its ${target}.`,
          cause: error,
        });
      case "read-timeout":
        return new ScanTimeoutError({
          message: `@engine/clamav: clamd at ${where} did not answer ${command}: ${error.message}`,
          hint: "clamd may be overloaded; raise readTimeoutMs or check clamd's load with STATS.",
          cause: error,
        });
      case "garbage":
        return new ProtocolError({
          message: `@engine/clamav: ${where} does not speak the clamd protocol (${error.message})`,
          hint: `Check that ${where} is clamd.`,
          cause: error,
        });
      default:
        return new BackendUnavailableError({
          message: `@engine/clamav: clamd at ${where} closed the connection before answering ${command} (${error.message})`,
          hint: "Check that clamd is running (was it killed or restarted?) and its log.",
          cause: error,
        });
    }
  }
  return new BackendUnavailableError({
    message: `@engine/clamav: ${command} to clamd at ${where} failed: ${(error as Error)?.message ?? String(error)}`,
    cause: error,
  });
}

/** An artifact over `maxStreamBytes` (before sending) or refused by clamd's StreamMaxLength (`sent` bytes in). */
export function clamdTooLarge(
  maxStreamBytes: number,
  size: number | undefined,
  sent?: number,
  cause?: unknown,
): ArtifactTooLargeError {
  const limit = maxStreamBytes;
  const amount = size ?? sent;
  return new ArtifactTooLargeError({
    message:
      sent !== undefined && (size === undefined || size <= limit)
        ? `@engine/clamav: clamd refused the stream after ${sent} bytes: it is over clamd's StreamMaxLength`
        : `@engine/clamav: the artifact${amount === undefined ? "" : ` (${amount} bytes)`} is over maxStreamBytes (${limit} bytes)`,
    hint: "Raise StreamMaxLength in clamd.conf and maxStreamBytes to match, or skip artifacts this large.",
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A reply clamd should not give to `command` (an unknown command, a timeout reading ours, garbage). */
export function clamdUnexpectedReply(
  endpoint: ClamdEndpoint,
  command: string,
  reply: string,
): ProtocolError {
  const kind = parseClamdReply(reply).kind;
  const detail =
    kind === "unknown-command"
      ? "clamd does not know this command (is it an old clamd?)"
      : kind === "command-read-timed-out"
        ? "clamd timed out reading our command"
        : `unexpected reply ${JSON.stringify(reply).slice(0, 200)}`;
  return new ProtocolError({
    message: `@engine/clamav: ${command} to clamd at ${describeEndpoint(endpoint)}: ${detail}`,
  });
}

/** A dropped upload at least this large, with clamd alive, is read as its StreamMaxLength refusal. */
const sizeRefusalFloorBytes = 1024 * 1024;

/**
 * A socket failure during a scan, as an engine error. clamd closes the socket at its
 * StreamMaxLength while we still send (EPIPE, a close) or after the kernel took the whole
 * upload, and closing with unread data makes the kernel send a reset that can discard its
 * "size limit exceeded" reply: so a dropped large upload is "too large" when `isAlive()`
 * (a PING) says clamd still runs, and "went away" when it does not. A drop after a small
 * complete upload is not a size refusal.
 */
export async function clamdScanFailure(
  endpoint: ClamdEndpoint,
  failure: ClamdConnectionFailure,
  upload: { started: boolean; finishedSending: boolean; bytesSent: number },
  size: number | undefined,
  maxStreamBytes: number,
  isAlive: () => Promise<boolean>,
): Promise<EngineError> {
  const dropped = upload.started && (failure.kind === "write-failed" || failure.kind === "closed");
  const largeEnough = !upload.finishedSending || upload.bytesSent >= sizeRefusalFloorBytes;
  if (!dropped || !largeEnough) return clamdConnectionError(endpoint, failure, "INSTREAM");
  if (await isAlive()) return clamdTooLarge(maxStreamBytes, size, upload.bytesSent, failure);
  return new BackendUnavailableError({
    message: `@engine/clamav: clamd at ${describeEndpoint(endpoint)} went away while we sent the artifact (${failure.message})`,
    hint: "Check that clamd is running (was it killed or restarted?).",
    cause: failure,
  });
}
