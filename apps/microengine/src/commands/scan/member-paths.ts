import type { BackendProvenance } from "@engine/core";
import { printablePath } from "./scan-output.js";

/** What the reporters read of a backend's `metadata.unpack` (`@engine/unpack`'s report). */
interface UnpackView {
  detected_in?: unknown;
  skipped?: unknown;
}

/** One entry of the report's `skipped`: where, its `SKIPPED:*` code, why. */
export interface SkippedMember {
  path: string;
  code: string;
  reason: string;
}

function unpackOf(backend: Pick<BackendProvenance, "metadata">): UnpackView | undefined {
  const unpack = backend.metadata?.unpack;
  return typeof unpack === "object" && unpack !== null ? (unpack as UnpackView) : undefined;
}

function isSkippedMember(value: unknown): value is SkippedMember {
  const entry = value as Partial<SkippedMember> | null;
  return (
    typeof entry === "object" &&
    entry !== null &&
    typeof entry.path === "string" &&
    typeof entry.code === "string" &&
    typeof entry.reason === "string"
  );
}

/**
 * The member a backend found something in (`archive.zip!/a.exe`), printable (quoted when it
 * holds a control character); undefined when it found it in the artifact itself.
 */
export function detectedIn(backend: Pick<BackendProvenance, "metadata">): string | undefined {
  const path = unpackOf(backend)?.detected_in;
  return typeof path === "string" && path.length > 0 ? printablePath(path) : undefined;
}

/**
 * The member a backend could not look into that made its answer unknown: the first skip with
 * the backend's own `SKIPPED:*` reason, or undefined when there is none (its answer is about
 * the artifact itself). Path and reason are printable (quoted when they hold a control
 * character).
 */
export function skippedMember(
  backend: Pick<BackendProvenance, "metadata" | "reason">,
): SkippedMember | undefined {
  const skipped = unpackOf(backend)?.skipped;
  if (!Array.isArray(skipped)) return undefined;
  const members = skipped.filter(isSkippedMember);
  const member = members.find((each) => each.code === backend.reason);
  return member
    ? { ...member, path: printablePath(member.path), reason: printablePath(member.reason) }
    : undefined;
}
