/** A half-open range of bytes of a zip, `[start, end)`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Bytes two entries may share before they count as overlapping: ClamAV's fudge factor (2),
 * added after enterprise JARs with a 1-byte overlap raised false alarms.
 */
export const overlapToleranceBytes = 2;

/** Overlapping entries a zip may have before it is a bomb: ClamAV alerts on more than 5. */
export const maximumOverlappingEntries = 5;

/**
 * How many entries overlap an earlier one (ClamAV's `Heuristics.Zip.OverlappingFiles`): the
 * ranges (local header to end of data) sorted by start, an entry overlaps when it starts more
 * than {@link overlapToleranceBytes} before the end of one before it. Entries sharing a local
 * header (Fifield's full overlap) count too.
 */
export function countOverlaps(ranges: readonly ByteRange[]): number {
  const sorted = [...ranges].sort((first, second) => first.start - second.start);
  let reach = Number.NEGATIVE_INFINITY;
  let overlaps = 0;
  for (const { start, end } of sorted) {
    if (start + overlapToleranceBytes < reach) overlaps += 1;
    reach = Math.max(reach, end);
  }
  return overlaps;
}

/** Ranges sorted by start with the overlapping and touching ones merged. */
export function mergeRanges(ranges: readonly ByteRange[]): ByteRange[] {
  const sorted = ranges
    .filter((range) => range.end > range.start)
    .sort((first, second) => first.start - second.start);
  const merged: ByteRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last && range.start <= last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ ...range });
  }
  return merged;
}

/** True when `offset` lies in one of `merged` (sorted and merged, see {@link mergeRanges}). */
export function isCovered(merged: readonly ByteRange[], offset: number): boolean {
  let low = 0;
  let high = merged.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((merged[middle] as ByteRange).end <= offset) low = middle + 1;
    else high = middle;
  }
  const range = merged[low];
  return range !== undefined && range.start <= offset;
}

/** The parts of `[0, size)` no range covers, at least `minimumBytes` long, in order. */
export function uncoveredRanges(
  ranges: readonly ByteRange[],
  size: number,
  minimumBytes: number,
): ByteRange[] {
  const gaps: ByteRange[] = [];
  let position = 0;
  for (const range of mergeRanges(ranges)) {
    if (range.start - position >= minimumBytes) gaps.push({ start: position, end: range.start });
    position = Math.max(position, range.end);
  }
  if (size - position >= minimumBytes) gaps.push({ start: position, end: size });
  return gaps;
}

/**
 * The extents of the entries read so far (local header to end of data), sorted, and how
 * many entries overlap another (ClamAV's count, with its tolerance): an entry whose local
 * header lies inside an entry read before, or whose extent covers the start of one. This
 * catches the overlaps a directory hides (sizes declared too small, local headers quoted in
 * extra fields), since data is decoded to its own end whatever size is declared.
 */
export class ExtentLedger {
  private readonly sorted: ByteRange[] = [];
  /** Entries found overlapping another. */
  overlaps = 0;

  /** The extents recorded, sorted by start. */
  get extents(): readonly ByteRange[] {
    return this.sorted;
  }

  /** Counts an entry whose local header at `offset` lies inside one recorded before. */
  checkStart(offset: number): void {
    const before = this.sorted[this.indexAfter(offset) - 1];
    if (before && offset + overlapToleranceBytes < before.end) this.overlaps += 1;
  }

  /** Records an entry's extent; counts it when it covers the start of one recorded after it. */
  add(range: ByteRange): void {
    const index = this.indexAfter(range.start);
    const next = this.sorted[index];
    if (next && next.start + overlapToleranceBytes < range.end) this.overlaps += 1;
    this.sorted.splice(index, 0, range);
  }

  /** The index of the first extent starting after `offset`. */
  private indexAfter(offset: number): number {
    let low = 0;
    let high = this.sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((this.sorted[middle] as ByteRange).start <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
