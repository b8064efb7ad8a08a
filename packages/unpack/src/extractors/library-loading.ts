import { BackendUnavailableError } from "@engine/core";

/**
 * A format library loaded at its first use, not when `@engine/unpack` is imported (zip.js,
 * tar-stream, cfb and fzstd took ~65 ms of every start-up, archives or not). A load that fails
 * is not kept (the next use tries again) and fails the walk with `BackendUnavailableError`:
 * never taken for "not this format", which would leave the file's members unseen.
 */
export function lazyLibrary<T>(name: string, load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined;
      throw new BackendUnavailableError({
        message: `@engine/unpack: cannot load ${name}: ${(error as Error)?.message ?? String(error)}`,
        hint: "Reinstall @engine/unpack with its dependencies.",
        cause: error,
      });
    });
    return loading;
  };
}
