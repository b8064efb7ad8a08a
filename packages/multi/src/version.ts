declare const __ENGINE_MULTI_VERSION__: string;

/** The version of `@engine/multi`, reported as `metadata.scanner.version`. */
export const multiPackageVersion: string = __ENGINE_MULTI_VERSION__;
