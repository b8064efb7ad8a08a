/** Compiled rules, owned by the addon (freed when garbage-collected). */
export type CompiledRules = { readonly __compiledRules: unique symbol };

/** A compiler message: `level` 0 is an error, 1 a warning; `index` is the source it belongs to. */
export interface NativeDiagnostic {
  index: number;
  level: number;
  line: number;
  message: string;
}

/** A non-private matching rule. */
export interface NativeMatch {
  namespace: string;
  identifier: string;
  tags: string[];
  metadata: Record<string, string | number | boolean>;
}

/**
 * Compiles `sources[i]` in namespace `namespaces[i]`, with external variables and their
 * defaults. With `validate`, each source is first compiled alone and the broken ones are
 * reported and left out. Runs on the libuv thread pool.
 */
export function compile(
  namespaces: string[],
  sources: string[],
  externals: Record<string, string | number | boolean>,
  validate: boolean,
): Promise<{ accepted: number[]; diagnostics: NativeDiagnostic[]; rules?: CompiledRules }>;

/**
 * Scans a Buffer, or a file by path, on the libuv thread pool. `timeoutSeconds` (0: none) is
 * libyara's own timeout: the scan stops and rejects with "the scan timed out".
 */
export function scan(
  rules: CompiledRules,
  target: Uint8Array | string,
  externals: Record<string, string | number | boolean>,
  timeoutSeconds: number,
): Promise<NativeMatch[]>;

/** The libyara version this addon was built against. */
export function version(): string;
