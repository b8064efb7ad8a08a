declare const __ENGINE_CORE_VERSION__: string;

/** The version of `@engine/core` (digits and dots), as published. */
export const engineCoreVersion: string = __ENGINE_CORE_VERSION__;
