import type { ListedEntry, Listing, Outcome } from "./seven-zip-protocol.js";

/** A `Key = Value` line of `7zz l -slt`. */
const property = /^([A-Za-z][A-Za-z ]*?) = ?(.*)$/;

/** A listed size: digits, else unknown. */
function sizeOf(value: string | undefined): number | undefined {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

/** A Unix mode as 7-Zip lists it (`drwxr-xr-x`, `lrwxrwxrwx`). */
const unixMode = /^[-dlbcps][-rwxsStT]{9}$/;

/** Whether listed attributes (`D drwxr-xr-x`, `A -rw-r--r--`, `A lrwxrwxrwx`, `D`) say `kind`. */
function hasMode(attributes: string | undefined, kind: "directory" | "link"): boolean {
  for (const token of attributes?.split(/\s+/) ?? []) {
    if (unixMode.test(token)) {
      if (token.startsWith(kind === "directory" ? "d" : "l")) return true;
    } else if (kind === "directory" && /^[A-Z]+$/.test(token) && token.includes("D")) return true;
  }
  return false;
}

/**
 * The archive and its entries from the standard output of `7zz l -slt`: the archive's block
 * (between `--` and `----------`, with any `ERRORS:`/`WARNINGS:` lines), then one block of
 * `Key = Value` lines per entry. An entry of a solid block without its own packed size gets the
 * block's (the first entry of a 7z block carries it).
 */
export function parseListing(lines: readonly string[]): Listing {
  const start = lines.indexOf("--");
  const separator = lines.indexOf("----------", start + 1);
  const problems: string[] = [];
  const archive = new Map<string, string>();
  let collecting: "problems" | undefined;
  for (const line of lines.slice(start + 1, separator < 0 ? lines.length : separator)) {
    const match = property.exec(line);
    if (match) {
      collecting = undefined;
      archive.set(match[1] as string, match[2] as string);
    } else if (/^(ERRORS|WARNINGS):$/.test(line.trim())) collecting = "problems";
    else if (collecting && line.trim()) problems.push(line.trim());
  }
  const entries: ListedEntry[] = [];
  if (separator >= 0) {
    let block = new Map<string, string>();
    const blockPacked = new Map<string, number>();
    const flush = () => {
      if (!block.has("Path")) {
        block = new Map();
        return;
      }
      const solidBlock = block.get("Block");
      let packedSize = sizeOf(block.get("Packed Size"));
      if (solidBlock) {
        if (packedSize !== undefined && packedSize > 0) blockPacked.set(solidBlock, packedSize);
        else packedSize = blockPacked.get(solidBlock);
      }
      const attributes = block.get("Attributes");
      const method = block.get("Method");
      entries.push({
        index: entries.length,
        path: block.get("Path") as string,
        size: sizeOf(block.get("Size")),
        packedSize: packedSize !== undefined && packedSize > 0 ? packedSize : undefined,
        method: method ? method : undefined,
        encrypted: block.get("Encrypted") === "+",
        directory: block.get("Folder") === "+" || hasMode(attributes, "directory"),
        link:
          hasMode(attributes, "link") ||
          Boolean(block.get("Symbolic Link")) ||
          Boolean(block.get("Hard Link")),
      });
      block = new Map();
    };
    for (const line of lines.slice(separator + 1)) {
      const match = property.exec(line);
      if (match) block.set(match[1] as string, match[2] as string);
      else if (!line.trim()) flush();
    }
    flush();
  }
  return {
    entries,
    physicalSize: sizeOf(archive.get("Physical Size")),
    problems,
  };
}

/**
 * The method a member was stored with, for its metadata: every coder of 7-Zip's chain, lower
 * case, without parameters, in 7-Zip's order (filters such as BCJ and Delta kept: a reader
 * that lacks one cannot read the member). `LZMA2:24 BCJ` is `lzma2 bcj`, `Delta:4 LZMA:16`
 * `delta lzma`, `PPMd:o6:mem24` `ppmd`, RAR 5's `v6:128K:m3` `m3`, a cabinet's `MSZip` `mszip`.
 */
export function methodName(method: string | undefined): string | undefined {
  const coders: string[] = [];
  for (const coder of method?.trim().split(/\s+/) ?? []) {
    const parts = coder.split(":").filter((part) => !/^(v\d+|\d+[kmg]?)$/i.test(part));
    const name = parts[0]?.toLowerCase();
    if (name) coders.push(name);
  }
  return coders.length > 0 ? coders.join(" ") : undefined;
}

/** An `ERROR: <message> : <name>` line of 7-Zip's standard error, split (a message has no ` : `). */
export function splitErrorLine(line: string): { message: string; name: string } | undefined {
  const match = /^\s*(?:ERROR|WARNING):\s*(.*)$/.exec(line);
  if (!match) return undefined;
  const text = match[1] as string;
  const at = text.indexOf(" : ");
  return at < 0
    ? { message: text, name: "" }
    : { message: text.slice(0, at), name: text.slice(at + 3) };
}

/**
 * What a 7-Zip error message means for the entry it names: `ENCRYPTED` (a password was
 * needed), `UNSUPPORTED` (a method 7-Zip lacks), `CORRUPT` (CRC, data or header errors, an
 * unexpected end); `trailing` for data after the end of the payload (the content is whole);
 * `ignored` for links 7-Zip would not create (they carry no content).
 */
export function outcomeOfError(message: string): Outcome | "trailing" | "ignored" {
  if (/data after the end of the payload/i.test(message)) return "trailing";
  if (/dangerous link|symbolic link|hard link/i.test(message)) return "ignored";
  if (/wrong password|encrypted/i.test(message))
    return { code: "ENCRYPTED", reason: `7-Zip: ${message} (no password is tried)` };
  if (/unsupported (compression )?method|unsupported feature/i.test(message))
    return { code: "UNSUPPORTED", reason: `7-Zip: ${message}` };
  if (/can't allocate|cannot allocate|not enough memory/i.test(message))
    return { code: "LIMITS", reason: `7-Zip: ${message}` };
  return { code: "CORRUPT", reason: `7-Zip: ${message}` };
}

/**
 * The outcome of an archive 7-Zip could not open: encrypted headers (`Cannot open encrypted
 * archive. Wrong password?`), else corrupt or truncated (`Cannot open the file as archive`,
 * `Unexpected end of archive`, ...).
 */
export function outcomeOfOpenFailure(
  messages: readonly string[],
  format: string,
  archivePath: string,
): Outcome {
  const lines = messages
    .map((line) =>
      line
        .replace(/^\s*(ERROR|WARNING):\s*/, "")
        .split(archivePath)
        .join("")
        .replace(/^[\s:]+/, "")
        .trim(),
    )
    .filter((line) => line && !/^(ERRORS|WARNINGS):?$/.test(line));
  const text = [...new Set(lines)].slice(0, 5).join("; ") || "7-Zip could not open it";
  if (/encrypted archive|wrong password/i.test(text))
    return {
      code: "ENCRYPTED",
      reason: `the ${format} archive's headers are encrypted (no password is tried): ${text}`,
    };
  if (/unsupported/i.test(text))
    return { code: "UNSUPPORTED", reason: `7-Zip cannot read this ${format} archive: ${text}` };
  return { code: "CORRUPT", reason: `the ${format} archive could not be opened: ${text}` };
}
