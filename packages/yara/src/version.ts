declare const __ENGINE_YARA_VERSION__: string;

/** The version of `@engine/yara`, reported as `metadata.scanner.version`. */
export const yaraPackageVersion: string = __ENGINE_YARA_VERSION__;
