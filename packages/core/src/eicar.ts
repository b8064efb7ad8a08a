/**
 * The 68-character EICAR anti-virus test string (eicar.org). Every anti-virus engine detects a
 * file made of it; it is harmless. Kept split in the source so that scanners of this
 * repository's own files do not flag it.
 */
export const eicarTestString: string = [
  "X5O!P%@AP[4\\PZX54(P^)7CC)7}$",
  "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
].join("");

/** A fresh copy of the EICAR test file's bytes (the 68-byte string, no trailing newline). */
export function eicarBytes(): Buffer {
  return Buffer.from(eicarTestString, "latin1");
}
