/** One piece of a rule source that came from one file, for mapping compiler lines back. */
export interface LineSegment {
  /** First line of this piece in the combined source (1-based). */
  combinedStartLine: number;
  /** Number of lines. */
  lineCount: number;
  /** The file (or inline label) the lines come from. */
  origin: string;
  /** The first line's number in that file (1-based). */
  originStartLine: number;
}
