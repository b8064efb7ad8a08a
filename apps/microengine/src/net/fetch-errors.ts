import { ArtifactTooLargeError, ArtifactUnavailableError } from "@engine/core";

/**
 * A refused download. `publicReason` goes into the answer (no addresses or paths); `detail`
 * (hosts, resolved addresses) only into the logs.
 */
export function refused(publicReason: string, detail = publicReason): ArtifactUnavailableError {
  return new ArtifactUnavailableError({
    message: `@engine/microengine: artifact download refused: ${detail}`,
    hint: "Allow the host with ARTIFACT_ALLOWED_HOSTS (and ARTIFACT_ALLOW_PRIVATE_ADDRESSES for private networks).",
    publicMessage: `artifact download refused: ${publicReason}`,
  });
}

/** The artifact is over ARTIFACT_MAX_BYTES (`size` when known). */
export function tooLarge(maxBytes: number, size?: number): ArtifactTooLargeError {
  return new ArtifactTooLargeError({
    message: `@engine/microengine: the artifact is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)${size === undefined ? "" : `: ${size} bytes`}`,
    hint: "Raise ARTIFACT_MAX_BYTES to scan larger artifacts.",
    publicMessage: `the artifact is larger than ARTIFACT_MAX_BYTES (${maxBytes} bytes)`,
  });
}
