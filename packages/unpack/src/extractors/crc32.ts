import * as zlib from "node:zlib";

/** CRC-32 (IEEE 802.3, as gzip and zip use it), incrementally: zlib's, where Node has it. */
const native = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

const table = (() => {
  const entries = new Uint32Array(256);
  for (let index = 0; index < 256; index += 1) {
    let value = index;
    for (let bit = 0; bit < 8; bit += 1)
      value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
    entries[index] = value >>> 0;
  }
  return entries;
})();

/** The CRC-32 of `bytes` continued from `previous` (0 to start). */
export function crc32(bytes: Uint8Array, previous = 0): number {
  if (native) return native(bytes, previous) >>> 0;
  let crc = ~previous >>> 0;
  for (let index = 0; index < bytes.length; index += 1)
    crc = (table[(crc ^ (bytes[index] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}
