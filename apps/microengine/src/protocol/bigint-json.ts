import { randomBytes } from "node:crypto";

/**
 * Marks big integers while they pass through a string: a nonce drawn once per process, never
 * sent anywhere, so no sender can write a string that reads as one.
 */
const marker = `\u2063bigint:${randomBytes(12).toString("hex")}:`;
const markedInteger = new RegExp(`"${marker}(-?\\d+)"`, "g");

/**
 * Longest integer kept exact, in digits: a uint256 (ids, wei) has 78. Longer literals stay
 * numbers (and fail validation), so a million-digit literal costs no BigInt parse.
 */
const maximumDigits = 80;

/**
 * Integer literals outside JavaScript's safe range, found by a scan of the JSON text that
 * skips strings, and whether each stands where a value may (not as an object key, which JSON
 * does not allow: those are left for JSON.parse to refuse).
 */
function unsafeIntegerLiterals(text: string): Array<{ start: number; end: number }> {
  const found: Array<{ start: number; end: number }> = [];
  const containers: Array<"object" | "array"> = [];
  let expectingKey = false;
  for (let index = 0; index < text.length; ) {
    const character = text.charCodeAt(index);
    if (character === 0x22 /* " */) {
      index += 1;
      while (index < text.length) {
        const inner = text.charCodeAt(index);
        if (inner === 0x5c /* \ */) index += 2;
        else if (inner === 0x22) break;
        else index += 1;
      }
      index += 1;
      expectingKey = false;
      continue;
    }
    if (character === 0x7b /* { */) {
      containers.push("object");
      expectingKey = true;
    } else if (character === 0x5b /* [ */) {
      containers.push("array");
      expectingKey = false;
    } else if (character === 0x7d /* } */ || character === 0x5d /* ] */) {
      containers.pop();
      expectingKey = false;
    } else if (character === 0x2c /* , */) {
      expectingKey = containers.at(-1) === "object";
    } else if (character === 0x3a /* : */) {
      expectingKey = false;
    } else if (character === 0x2d /* - */ || (character >= 0x30 && character <= 0x39)) {
      const start = index;
      index += 1;
      while (index < text.length && /[0-9eE.+-]/.test(text.charAt(index))) index += 1;
      const literal = text.slice(start, index);
      if (
        !expectingKey &&
        literal.length <= maximumDigits + 1 &&
        /^-?(0|[1-9]\d*)$/.test(literal) &&
        !Number.isSafeInteger(Number(literal))
      ) {
        found.push({ start, end: index });
      }
      continue;
    }
    index += 1;
  }
  return found;
}

/**
 * `JSON.parse` that keeps integers beyond 2^53 exact: they come back as `bigint` (safe
 * integers stay numbers). Bounty ids and bids exceed JavaScript's safe integers; a plain
 * `JSON.parse` would silently merge distinct ids. Throws `SyntaxError` like `JSON.parse`.
 */
export function parseJsonWithBigInts(text: string): unknown {
  const literals = unsafeIntegerLiterals(text);
  if (literals.length === 0) return JSON.parse(text);
  // Each big literal becomes a marked string, then a bigint.
  let rewritten = "";
  let position = 0;
  for (const { start, end } of literals) {
    rewritten += `${text.slice(position, start)}"${marker}${text.slice(start, end)}"`;
    position = end;
  }
  rewritten += text.slice(position);
  return JSON.parse(rewritten, (_key, value) =>
    typeof value === "string" && value.startsWith(marker)
      ? BigInt(value.slice(marker.length))
      : value,
  );
}

/** `JSON.stringify` writing `bigint` values as plain JSON integers (never strings, floats or exponents). */
export function stringifyWithBigInts(value: unknown): string {
  let marked = false;
  const text = JSON.stringify(value, (_key, item) => {
    if (typeof item !== "bigint") return item;
    marked = true;
    return `${marker}${item.toString()}`;
  });
  return marked ? text.replaceAll(markedInteger, "$1") : text;
}

/**
 * A plain JSON copy of `value` with every `bigint` as its decimal string (for stores whose
 * readers use a plain `JSON.parse`, such as BullMQ job data); the reader's schema turns the
 * strings it expects back into bigints.
 */
export function withBigIntsAsStrings(value: unknown): unknown {
  return JSON.parse(
    JSON.stringify(value, (_key, item) => (typeof item === "bigint" ? item.toString() : item)),
  );
}
