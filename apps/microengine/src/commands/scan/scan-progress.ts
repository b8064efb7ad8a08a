import cliProgress from "cli-progress";
import { printablePath, sinkOf } from "./scan-output.js";

/**
 * How a scan shows its progress on stderr: not at all, a live line on a terminal, or a plain
 * line every few seconds (a log, a pipe).
 */
export type ProgressMode = "off" | "live" | "lines";

/**
 * The mode of `--progress` / `--no-progress`: off when asked; else the live line when stderr is
 * a terminal; else plain lines only when asked (`--progress`).
 */
export function progressMode(flag: boolean | undefined, stderrIsTTY: boolean): ProgressMode {
  if (flag === false) return "off";
  if (stderrIsTTY) return "live";
  return flag === true ? "lines" : "off";
}

/** How far before its mark a progress tick still counts as at it (ms). */
const timerToleranceMs = 20;

/**
 * A scan's progress on stderr, never on stdout (which may hold a JSON or SARIF report): the
 * entries the walk found, the files scanned and the rate (a walk that streams does not know
 * the total). `live` redraws one line on the terminal (with the file just done); lines for the
 * same terminal go through `print`, which takes the line away and draws it again below them.
 * `lines` writes `scan progress: ...` after the first second, then every `intervalMs`.
 */
export class ScanProgress {
  readonly #bar: cliProgress.SingleBar | undefined;
  readonly #out: NodeJS.WritableStream & { isTTY?: boolean };
  readonly #err: NodeJS.WritableStream;
  readonly #started = Date.now();
  readonly #timer: NodeJS.Timeout | undefined;
  #found = 0;
  #files = 0;
  #shown = false;
  #lastLine = 0;

  constructor(options: {
    mode: ProgressMode;
    out: NodeJS.WritableStream & { isTTY?: boolean };
    err: NodeJS.WritableStream;
    /** Between two plain lines (`lines`), in ms. Default 5000. */
    intervalMs?: number;
  }) {
    this.#out = options.out;
    this.#err = options.err;
    this.#bar =
      options.mode === "live"
        ? new cliProgress.SingleBar(
            {
              stream: options.err,
              format: "{found} found, {value} files scanned, {rate} files/s {file}",
              clearOnComplete: true,
            },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
    this.#bar?.start(0, 0, this.#payload(""));
    this.#shown = this.#bar !== undefined;
    if (options.mode === "lines") {
      const intervalMs = options.intervalMs ?? 5000;
      this.#timer = setInterval(() => this.#plainLine(intervalMs), Math.min(1000, intervalMs));
      this.#timer.unref();
    }
  }

  /** Counts an entry the walk found. */
  entryFound(): void {
    this.#found += 1;
    this.#bar?.update(this.#payload(undefined));
  }

  /** Counts a file scanned (or failed). */
  fileDone(path: string): void {
    this.#files += 1;
    this.#bar?.increment(this.#payload(printablePath(path)));
  }

  /** `N found, M files scanned, R files/s`. */
  summaryLine(): string {
    return `${this.#found} found, ${this.#files} files scanned, ${this.#rate()} files/s`;
  }

  /** Writes text to `stream`, around the progress line when both are on the same terminal. */
  async print(stream: NodeJS.WritableStream, text: string): Promise<void> {
    const around = this.#shown && (stream === this.#err || this.#out.isTTY === true);
    if (around) this.#bar?.stop();
    await sinkOf(stream)(text);
    if (around) this.#bar?.start(0, this.#files, this.#payload(""));
  }

  /** Takes the progress away for good. */
  stop(): void {
    this.#bar?.stop();
    this.#shown = false;
    clearInterval(this.#timer);
  }

  #rate(): string {
    const seconds = (Date.now() - this.#started) / 1000;
    return seconds > 0 ? (this.#files / seconds).toFixed(1) : "0.0";
  }

  #payload(file: string | undefined): Record<string, string | number> {
    return { found: this.#found, rate: this.#rate(), ...(file === undefined ? {} : { file }) };
  }

  #plainLine(intervalMs: number): void {
    const now = Date.now();
    // Within a timer tick of the mark is at the mark: the wall clock may read a millisecond short
    // of the interval timer's, and a scan that ended between 1 and 2 s printed no line at all.
    const early = (since: number, mark: number) => now - since < mark - timerToleranceMs;
    if (this.#lastLine !== 0 && early(this.#lastLine, intervalMs)) return;
    if (early(this.#started, Math.min(1000, intervalMs))) return;
    this.#lastLine = now;
    const seconds = Math.round((now - this.#started) / 1000);
    this.#err.write(`scan progress: ${this.summaryLine()}, ${seconds} s\n`);
  }
}
