/**
 * `promise`, or a rejection with `message` after `ms` (the promise is left to settle alone).
 * The bound on every step of a backend module, and on `check`'s conformance checks.
 */
export function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_resolve, reject) => {
      // Not unref'd: a step that hangs with nothing else alive still ends in this error.
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
