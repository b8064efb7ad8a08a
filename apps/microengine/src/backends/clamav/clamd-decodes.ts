import type { ContainerFormat, UnpackedMember } from "@engine/unpack";

/**
 * What clamd decodes itself, by container format: `true` for every member, `false` for none
 * (clamd answers `OK` without looking inside), or the storage methods it decodes (a member
 * stored with any other method is unseen by clamd). Methods are spelled as {@link methodCoders}
 * gives them (`7zz l -slt`'s `Method`, lower case, without parameters).
 *
 * Measured, not assumed: `test/backends/clamav/clamd-decodes.int.test.ts` builds EICAR inside
 * each format and method with the real tools and asks a managed clamd, and fails when clamd's
 * answers and this table part. ClamAV 1.4.6 answers `OK` for zip LZMA, PPMd and xz, 7z BZip2,
 * Deflate and Delta, LZMA-alone, lzip, zstd, brotli, data appended after a gzip, the streams
 * of a bzip2 after its first, and a tar member whose size a pax record gives. `rar`
 * and `cfb` have no writer to measure with here, nor CAB's LZX and Quantum: their members go
 * to clamd (a second look costs time, never a miss).
 */
export const clamdDecodes: Readonly<Record<ContainerFormat, boolean | readonly string[]>> = {
  zip: ["stored", "deflate", "deflate64", "bzip2"],
  "7z": ["stored", "lzma", "lzma2", "ppmd", "bcj"],
  gzip: true,
  // Only a file's first stream (bzip2 -d and 7-Zip read them all).
  bzip2: ["bzip2"],
  xz: true,
  lzma: false,
  lzip: false,
  zstd: false,
  brotli: false,
  // Not what pax records or GNU long names change (a pax size over a ustar size of 0).
  tar: ["ustar"],
  iso: true,
  cab: ["stored", "mszip"],
  rar: false,
  cfb: false,
};

/** Other spellings of a method, as archive tools and libraries write them. */
const methodAliases: Readonly<Record<string, string>> = {
  store: "stored",
  none: "stored",
  copy: "stored",
  deflated: "deflate",
  bzip: "bzip2",
};

/**
 * A method as the table spells it: lower case, without parameters (7-Zip's `LZMA2:24`,
 * `PPMD:o6:mem24`), aliases resolved. A chain of coders (`BCJ LZMA2:24`) gives each one.
 */
export function methodCoders(method: string): string[] {
  return method
    .trim()
    .toLowerCase()
    .split(/\s+/)
    .filter((coder) => coder.length > 0)
    .map((coder) => {
      const name = coder.split(":")[0] ?? coder;
      return methodAliases[name] ?? name;
    });
}

/**
 * True when clamd decodes `container` stored with `method` itself (see {@link clamdDecodes}):
 * a format it decodes whole, or one of its methods (every coder of a chain). A method not
 * given for a format decoded by method is taken as unseen.
 */
export function clamdDecodesItself(container: ContainerFormat, method?: string): boolean {
  const decodes = clamdDecodes[container];
  if (typeof decodes === "boolean") return decodes;
  if (method === undefined) return false;
  const coders = methodCoders(method);
  return coders.length > 0 && coders.every((coder) => decodes.includes(coder));
}

/**
 * Whether a member goes to clamd (`scanMember` of ClamAV's unpacking scanner): only when clamd
 * cannot see it inside its container itself. A member a standard reader hides (data appended
 * after the end, an entry missing from a zip's central directory) always goes: clamd reads
 * containers as the standard readers do.
 */
export function clamdScansMember(
  member: Pick<UnpackedMember, "container" | "method" | "hidden">,
): boolean {
  if (member.hidden) return true;
  return !clamdDecodesItself(member.container, member.method);
}
