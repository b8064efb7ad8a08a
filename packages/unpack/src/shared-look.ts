import type { Artifact } from "@engine/core";
import { lookAtRoot, type RootLook } from "./unpack.js";

/** A look at an artifact and the scans using it. */
interface SharedLook {
  look: Promise<RootLook | undefined>;
  users: number;
}

/** The looks of artifacts being scanned, by artifact. */
const looks = new WeakMap<Artifact, SharedLook>();

/**
 * A look at a replayable artifact's first and last bytes ({@link lookAtRoot}), shared by the
 * scans of that same artifact that run at the same time: the unpacking wrappers of a
 * multi-scanner's backends are all handed one artifact, and each read it again before. Only
 * while one of them holds it: once every one released it, the next scan looks again (the file
 * may have changed). A look that fails (a caller's abort included) is `undefined` for every
 * holder: each walk then looks for itself.
 */
export function takeLook(
  artifact: Artifact,
  signal: AbortSignal,
): { look: Promise<RootLook | undefined>; release(): void } {
  let shared = looks.get(artifact);
  if (!shared) {
    shared = { look: lookAtRoot(artifact, signal).catch(() => undefined), users: 0 };
    looks.set(artifact, shared);
  }
  const held = shared;
  held.users += 1;
  let released = false;
  return {
    look: held.look,
    release: () => {
      if (released) return;
      released = true;
      held.users -= 1;
      if (held.users === 0 && looks.get(artifact) === held) looks.delete(artifact);
    },
  };
}
