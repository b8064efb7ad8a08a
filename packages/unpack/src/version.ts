declare const __ENGINE_UNPACK_VERSION__: string;

/** The version of `@engine/unpack`, reported in the unpacking scanner's metadata. */
export const unpackPackageVersion: string = __ENGINE_UNPACK_VERSION__;
