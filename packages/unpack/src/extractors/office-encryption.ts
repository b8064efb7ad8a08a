/**
 * Encrypted Office documents in a compound file, told from a few bytes ([MS-OFFCRYPTO]):
 * encrypted OOXML (a .docx/.xlsx/.pptx with a password is a compound file holding it) and the
 * legacy binary formats' own flags. Streams are keyed by their path in lower case.
 */

/**
 * True for an encrypted OOXML package: an `EncryptedPackage` stream at the root (password
 * encryption puts an `EncryptionInfo` stream beside it, 2.3.4.1), or IRM-protected content
 * (`\x09DRMContent`, 2.2.10).
 */
export function isEncryptedPackage(streams: ReadonlyMap<string, Uint8Array>): boolean {
  return streams.has("encryptedpackage") || streams.has("\u0009drmcontent");
}

const word16 = (bytes: Uint8Array, at: number): number =>
  (bytes[at] ?? 0) | ((bytes[at + 1] ?? 0) << 8);

/**
 * A Word document (Word 6 to 2003) is encrypted when its FIB says so: `fEncrypted` (0x0100)
 * in the flags at offset 10 of the `WordDocument` stream, whose `wIdent` is 0xA5EC (Word 97)
 * or 0xA5DC (Word 6/95); `fObfuscated` then says XOR obfuscation, else RC4 ([MS-DOC] 2.5.2).
 */
function wordEncryption(streams: ReadonlyMap<string, Uint8Array>): string | undefined {
  const fib = streams.get("worddocument");
  if (!fib || fib.length < 12) return undefined;
  const identifier = word16(fib, 0);
  if (identifier !== 0xa5ec && identifier !== 0xa5dc) return undefined;
  const flags = word16(fib, 10);
  if (!(flags & 0x0100)) return undefined;
  return `an encrypted Word document (FIB fEncrypted, ${flags & 0x8000 ? "XOR obfuscation" : "RC4"})`;
}

/** Records of an Excel workbook's globals read to find FILEPASS, at most. */
const workbookRecordsRead = 1024;

/**
 * An Excel workbook (BIFF5 to BIFF8) is encrypted when its globals substream holds a FILEPASS
 * record (0x002F), which comes before any encrypted one, record headers staying in the clear
 * ([MS-XLS] 2.4.117); read up to the globals' EOF (0x000A).
 */
function excelEncryption(streams: ReadonlyMap<string, Uint8Array>): string | undefined {
  const workbook = streams.get("workbook") ?? streams.get("book");
  if (!workbook) return undefined;
  let position = 0;
  for (let read = 0; read < workbookRecordsRead && position + 4 <= workbook.length; read += 1) {
    const type = word16(workbook, position);
    if (type === 0x002f) return "an encrypted Excel workbook (FILEPASS record)";
    if (type === 0x000a) return undefined;
    position += 4 + word16(workbook, position + 2);
  }
  return undefined;
}

/**
 * A PowerPoint presentation (97-2003) is encrypted when its `Current User` stream's
 * headerToken is 0xF3D1C4DF (0xE391C05F in the clear), or it has an `EncryptedSummary`
 * stream ([MS-PPT] 2.3.2, 2.3.7).
 */
function powerPointEncryption(streams: ReadonlyMap<string, Uint8Array>): string | undefined {
  const currentUser = streams.get("current user");
  const token =
    currentUser && currentUser.length >= 16
      ? (word16(currentUser, 12) | (word16(currentUser, 14) << 16)) >>> 0
      : 0;
  if (token === 0xf3d1c4df || streams.has("encryptedsummary"))
    return "an encrypted PowerPoint presentation (CryptSession10Container)";
  return undefined;
}

/** The streams each legacy format encrypts (the rest, VBA macros among them, stays clear). */
const encryptedStreamsOf = {
  word: ["worddocument", "1table", "0table", "data"],
  excel: ["workbook", "book"],
  powerPoint: ["powerpoint document", "pictures", "encryptedsummary"],
} as const;

/**
 * The streams of a legacy Office document that are encrypted (lower-case path -> why), empty
 * for a document in the clear: Word's FIB flag, Excel's FILEPASS, PowerPoint's Current User.
 */
export function legacyEncryptedStreams(
  streams: ReadonlyMap<string, Uint8Array>,
): Map<string, string> {
  const encrypted = new Map<string, string>();
  const checks = [
    [wordEncryption(streams), encryptedStreamsOf.word],
    [excelEncryption(streams), encryptedStreamsOf.excel],
    [powerPointEncryption(streams), encryptedStreamsOf.powerPoint],
  ] as const;
  for (const [reason, paths] of checks)
    if (reason) for (const path of paths) if (streams.has(path)) encrypted.set(path, reason);
  return encrypted;
}
