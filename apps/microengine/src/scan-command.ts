import { readdir, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  artifactFromFile,
  EngineError,
  type Scanner,
  type ScanResult,
  scanResultForError,
} from "@engine/core";
import cliProgress from "cli-progress";

async function* walk(path: string): AsyncGenerator<string> {
  const info = await stat(path);
  if (info.isDirectory()) {
    for (const entry of (await readdir(path)).sort()) yield* walk(join(path, entry));
  } else if (info.isFile()) {
    yield path;
  }
}

/** What `microengine scan` found, for the summary and the exit code. */
export interface ScanSummary {
  files: number;
  counts: Record<string, number>;
  errors: number;
}

/**
 * Scans files and directories (recursively): a progress bar on a terminal, or one JSON line per
 * artifact with `json`; a summary table at the end. Exit code (from the caller): 1 when
 * something is malicious, 2 on errors.
 */
export async function scanPaths(
  scanner: Scanner,
  paths: string[],
  options: {
    json: boolean;
    concurrency: number;
    timeoutMs: number;
    out: NodeJS.WritableStream;
    err: NodeJS.WritableStream & { isTTY?: boolean };
  },
): Promise<ScanSummary> {
  const files: string[] = [];
  for (const path of paths) {
    try {
      for await (const file of walk(resolve(path))) files.push(file);
    } catch (error) {
      options.err.write(`cannot read ${path}: ${(error as Error).message}\n`);
      return { files: 0, counts: {}, errors: 1 };
    }
  }
  const summary: ScanSummary = { files: files.length, counts: {}, errors: 0 };
  const bar =
    !options.json && options.err.isTTY
      ? new cliProgress.SingleBar(
          { stream: options.err, format: "{bar} {value}/{total} {file}" },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(files.length, 0, { file: "" });
  const malicious: string[] = [];
  const queue = [...files];
  await Promise.all(
    Array.from({ length: options.concurrency }, async () => {
      for (let file = queue.shift(); file; file = queue.shift()) {
        let result: ScanResult;
        let error: EngineError | undefined;
        try {
          result = await scanner.scan(artifactFromFile(file), {
            deadline: Date.now() + options.timeoutMs,
          });
        } catch (caught) {
          error = EngineError.isInstance(caught)
            ? caught
            : new EngineError({ message: String(caught), cause: caught });
          result = scanResultForError(caught);
          summary.errors += 1;
        }
        summary.counts[result.verdict] = (summary.counts[result.verdict] ?? 0) + 1;
        if (result.verdict === "malicious")
          malicious.push(`${file}: ${result.metadata.malware_family}`);
        if (options.json) {
          options.out.write(
            `${JSON.stringify({ path: file, ...result, ...(error ? { error: error.toJSON() } : {}) })}\n`,
          );
        }
        bar?.increment({ file });
      }
    }),
  );
  bar?.stop();
  if (!options.json) {
    for (const line of malicious) options.out.write(`MALICIOUS ${line}\n`);
    options.out.write(`\n  verdict     files\n`);
    for (const verdict of ["malicious", "suspicious", "benign", "unknown"]) {
      options.out.write(`  ${verdict.padEnd(10)}  ${summary.counts[verdict] ?? 0}\n`);
    }
    options.out.write(
      `  ${"errors".padEnd(10)}  ${summary.errors}\n  ${"total".padEnd(10)}  ${summary.files}\n`,
    );
  }
  return summary;
}
