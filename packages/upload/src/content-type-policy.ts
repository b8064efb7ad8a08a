/** Bytes of a file's head its type is read from (what `file-type` needs at most). */
export const typeHeadBytes = 4100;

type FileTypeModule = typeof import("file-type");

/** `file-type` (ESM only), imported once on first use so that the CommonJS build loads too. */
let fileTypeModule: Promise<FileTypeModule> | undefined;

/** The MIME type `file-type` reads from `head`'s magic bytes, or `""`. */
async function magicType(head: Uint8Array): Promise<string> {
  if (head.byteLength === 0) return "";
  fileTypeModule ??= import("file-type");
  const { fileTypeFromBuffer } = await fileTypeModule;
  return (await fileTypeFromBuffer(head))?.mime ?? "";
}

const decoder = () => new TextDecoder("utf-8", { fatal: true });

/**
 * True when `head` reads as text: UTF-8 (a sequence cut at the end of the head tolerated),
 * with no NUL and no control characters but tab, line feed, form feed and carriage return.
 */
export function looksLikeText(head: Uint8Array): boolean {
  let text: string;
  try {
    text = decoder().decode(head, { stream: true });
  } catch {
    return false;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
  return !/[\u0000-\u0008\u000b\u000e-\u001f\u007f]/.test(text);
}

const headText = (head: Uint8Array) => new TextDecoder("utf-8").decode(head).replace(/^\uFEFF/, "");

/**
 * The types with no magic bytes a list may name, each with what its text must look like to
 * pass as it (an HTML page does not pass as SVG, nor a CSV as JSON).
 */
const textTypes: ReadonlyMap<string, (text: string) => boolean> = new Map<
  string,
  (text: string) => boolean
>([
  ["text/plain", () => true],
  ["text/csv", () => true],
  ["text/tab-separated-values", () => true],
  ["text/markdown", () => true],
  ["application/json", (text) => /^\s*[[{"]/.test(text)],
  ["application/xml", (text) => /^\s*</.test(text)],
  ["text/xml", (text) => /^\s*</.test(text)],
  ["image/svg+xml", (text) => /^\s*</.test(text) && /<svg[\s>]/i.test(text)],
  ["text/html", (text) => /<(!doctype\s+html|html[\s>])/i.test(text)],
]);

/** A file's type by content, and whether `allowedTypes` lets it through. */
export interface TypeDecision {
  /** The type the file is taken to be. */
  type: string;
  /** False when an allow-list is set and does not name it. */
  allowed: boolean;
}

/**
 * Decides a file's type by its first bytes (`typeHeadBytes`): magic bytes first (`file-type`);
 * content with none that reads as text is one of the text types the list names (the declared
 * one when the list names it, else the first whose shape the text has); anything else is
 * `application/octet-stream`. The declared type never makes a file pass by itself.
 *
 * @param allowedTypes The allow-list (lowercase MIME types), or undefined for every type.
 */
export async function decideType(
  head: Uint8Array,
  declaredType: string,
  allowedTypes: readonly string[] | undefined,
): Promise<TypeDecision> {
  let magic = await magicType(head);
  const text = looksLikeText(head);
  // An SVG with an XML prolog is read as XML by its magic.
  if (magic === "application/xml" && textTypes.get("image/svg+xml")?.(headText(head)))
    magic = allowedTypes?.includes("image/svg+xml") ? "image/svg+xml" : magic;
  if (magic) return { type: magic, allowed: !allowedTypes || allowedTypes.includes(magic) };
  if (!text) {
    const type = "application/octet-stream";
    return { type, allowed: !allowedTypes || allowedTypes.includes(type) };
  }
  const declared = declaredType.toLowerCase().split(";")[0]?.trim() ?? "";
  if (!allowedTypes)
    return { type: textTypes.has(declared) ? declared : "text/plain", allowed: true };
  const content = headText(head);
  const fits = (type: string) => textTypes.get(type)?.(content) === true;
  const listed = allowedTypes.filter((type) => textTypes.has(type));
  const type = listed.includes(declared) && fits(declared) ? declared : listed.find(fits);
  return type ? { type, allowed: true } : { type: "text/plain", allowed: false };
}
