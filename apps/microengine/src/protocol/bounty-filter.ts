import type { Bounty } from "./bounty.js";

/** A key=value filter over a bounty (`mimetype=application/pdf`, `artifact_type=url`, any metadata key). */
export type BountyFilter = string;

/** The bounty's own fields a filter can name; metadata keys of the same name never replace them. */
const ownFields = ["mimetype", "artifact_type", "phase"] as const;

/** The text of a value a filter may compare: strings, numbers, booleans and bigints only. */
function comparable(value: unknown): string | undefined {
  switch (typeof value) {
    case "string":
      return value;
    case "number":
    case "boolean":
    case "bigint":
      return String(value);
    default:
      return undefined; // objects, arrays, null: never converted (no toString of the sender's)
  }
}

/**
 * True when `filter` (`key=value`, compared case-insensitively) matches the bounty: `mimetype`,
 * `artifact_type` and `phase` are the bounty's own fields (a metadata key of the same name never
 * stands in for them, even when the field is absent), any other key is looked up in the
 * metadata. Only strings, numbers, booleans and bigints match; never throws.
 */
export function matchesFilter(
  filter: BountyFilter,
  bounty: Pick<Bounty, "mimetype" | "artifact_type" | "phase" | "metadata">,
): boolean {
  const separator = filter.indexOf("=");
  if (separator <= 0) return false;
  const key = filter.slice(0, separator).trim();
  const expected = filter
    .slice(separator + 1)
    .trim()
    .toLowerCase();
  let actual: unknown;
  if ((ownFields as readonly string[]).includes(key)) {
    actual = bounty[key as (typeof ownFields)[number]];
  } else {
    const metadata = bounty.metadata;
    actual =
      metadata !== null && typeof metadata === "object" && Object.hasOwn(metadata, key)
        ? metadata[key]
        : undefined;
  }
  return comparable(actual)?.toLowerCase() === expected;
}
