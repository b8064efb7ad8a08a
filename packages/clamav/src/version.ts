declare const __ENGINE_CLAMAV_VERSION__: string;

/** The version of `@engine/clamav`, reported as `metadata.scanner.version`. */
export const clamavPackageVersion: string = __ENGINE_CLAMAV_VERSION__;
