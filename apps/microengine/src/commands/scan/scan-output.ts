import { once } from "node:events";
import type { TextSink } from "./sarif-report.js";

/**
 * A path as printed in text: as is, or JSON-quoted when it holds a control character (a
 * newline in a file name must not forge a line of the report, nor an escape sequence reach
 * the terminal).
 */
export function printablePath(path: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
  return /[\u0000-\u001f\u007f-\u009f]/.test(path) ? JSON.stringify(path) : path;
}

/** Writes to a stream, waiting for it to drain when its buffer is full. */
export function sinkOf(stream: NodeJS.WritableStream): TextSink {
  return async (text) => {
    if (!stream.write(text)) await once(stream as NodeJS.EventEmitter, "drain");
  };
}
