import cliProgress from "cli-progress";
import { printablePath, sinkOf } from "./scan-output.js";

/**
 * The progress line on a terminal: the files scanned so far and the one just done (a walk
 * that streams does not know the total). Lines for the same terminal go through `print`,
 * which takes the line away and draws it again below them.
 */
export class ScanProgress {
  readonly #bar: cliProgress.SingleBar | undefined;
  readonly #out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly #err: NodeJS.WritableStream;
  #files = 0;
  #shown = false;

  constructor(options: {
    enabled: boolean;
    out: NodeJS.WritableStream & { isTTY?: boolean };
    err: NodeJS.WritableStream;
  }) {
    this.#out = options.out;
    this.#err = options.err;
    this.#bar = options.enabled
      ? new cliProgress.SingleBar(
          { stream: options.err, format: "{value} files scanned {file}", clearOnComplete: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
    this.#bar?.start(0, 0, { file: "" });
    this.#shown = this.#bar !== undefined;
  }

  /** Counts a file scanned (or failed). */
  fileDone(path: string): void {
    this.#files += 1;
    this.#bar?.increment({ file: printablePath(path) });
  }

  /** Writes text to `stream`, around the progress line when both are on the same terminal. */
  async print(stream: NodeJS.WritableStream, text: string): Promise<void> {
    const around = this.#shown && (stream === this.#err || this.#out.isTTY === true);
    if (around) this.#bar?.stop();
    await sinkOf(stream)(text);
    if (around) this.#bar?.start(0, this.#files, { file: "" });
  }

  /** Takes the progress line away for good. */
  stop(): void {
    this.#bar?.stop();
    this.#shown = false;
  }
}
