import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { Artifact, Scanner, ScanResult, Verdict } from "@engine/core";
import {
  type ScanFormat,
  type ScanPathsOptions,
  scanPaths,
} from "../../../src/commands/scan/scan-command.js";

// The fakes the scan command's unit tests share: output sinks, scanners with canned answers,
// and a scan over them.

/** A writable that keeps (or only counts) what it is given, optionally claiming to be a TTY. */
export function sink(options: { keep?: boolean; isTTY?: boolean } = {}) {
  let text = "";
  let bytes = 0;
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        bytes += chunk.length;
        if (options.keep !== false) text += chunk.toString();
        done();
      },
    }),
    { isTTY: options.isTTY ?? false },
  );
  return { stream, text: () => text, bytes: () => bytes };
}

/** A scanner that answers with `answer(path, call)` (call counts from 1). */
export function fakeScanner(
  answer: (path: string, call: number) => ScanResult | Promise<ScanResult>,
): Scanner {
  let calls = 0;
  return {
    name: "fake",
    scan: async (artifact: Artifact) => answer(artifact.path ?? "", ++calls),
    [Symbol.asyncDispose]: async () => {},
  };
}

/** A combined result as the multi-scanner makes it: one backend's answer in `metadata.backends`. */
export function resultOf(verdict: Verdict, extra: Record<string, unknown> = {}): ScanResult {
  const family = verdict === "malicious" || verdict === "suspicious" ? "Test.Family" : "";
  return {
    verdict,
    confidence: 1,
    metadata: {
      malware_family: family,
      backends: [
        {
          name: "fake",
          verdict,
          confidence: 1,
          malware_family: family,
          duration_ms: 1,
          ...(verdict === "unknown" ? { reason: "SKIPPED:ENCRYPTED" } : {}),
          metadata: { malware_family: family, scanner: { vendor_version: "fake-1.0" }, ...extra },
        },
      ],
    },
  } as ScanResult;
}

export async function scan(
  scanner: Scanner,
  paths: string[],
  options: {
    format?: ScanFormat;
    concurrency?: number;
    out?: Writable;
    err?: Writable;
  } & Partial<
    Pick<ScanPathsOptions, "maxFileBytes" | "exclude" | "progress" | "progressIntervalMs" | "stop">
  > = {},
) {
  const out = sink();
  const err = sink();
  const summary = await scanPaths(scanner, paths, {
    maxFileBytes: 2 ** 40,
    ...options,
    format: options.format ?? "text",
    concurrency: options.concurrency ?? 4,
    timeoutMs: 10_000,
    statuses: [],
    out: options.out ?? out.stream,
    err: options.err ?? err.stream,
  });
  return { summary, stdout: out.text(), stderr: err.text() };
}

/** Writes `count` tiny files under `directory`, 500 per subdirectory. */
export async function tinyFiles(directory: string, count: number): Promise<void> {
  for (let index = 0; index < count; index += 1) {
    const sub = join(directory, `d${String(Math.floor(index / 500)).padStart(3, "0")}`);
    if (index % 500 === 0) await mkdir(sub, { recursive: true });
    await writeFile(join(sub, `f${String(index).padStart(5, "0")}`), `${index}\n`);
  }
}
