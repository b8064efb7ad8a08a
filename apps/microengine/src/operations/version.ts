declare const __ENGINE_MICROENGINE_VERSION__: string;

/** The engine's version, reported as `metadata.scanner.version`. */
export const engineVersion: string = __ENGINE_MICROENGINE_VERSION__;
