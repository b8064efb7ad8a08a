import { brotliCompressSync, gzipSync } from "node:zlib";
import { zipArchive } from "@engine/clamav/testing";
import { artifactFromBytes, eicarBytes, type ScanResult } from "@engine/core";
import type { EngineBackends } from "../backends/build-backends.js";

/** One archive `check` scans: what it holds, and the verdict every unpacking backend must give. */
export interface ArchiveCheckCase {
  /** The PASS/FAIL line's label. */
  label: string;
  /** The artifact's file name (member paths start with it). */
  filename: string;
  /** Its bytes. */
  bytes(): Uint8Array;
  expected: "malicious" | "benign";
}

/** A ustar header block's octal field: `value` in `width - 1` digits and a NUL. */
function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

/** A tar archive (ustar) of regular files, as `tar -cf` writes one. */
export function tarArchive(files: ReadonlyArray<{ name: string; data: Uint8Array }>): Buffer {
  const blocks: Buffer[] = [];
  for (const { name, data } of files) {
    const header = Buffer.alloc(512);
    header.write(name, 0, 100, "utf8");
    header.write(octal(0o644, 8), 100);
    header.write(octal(0, 8), 108);
    header.write(octal(0, 8), 116);
    header.write(octal(data.byteLength, 12), 124);
    header.write(octal(0, 12), 136);
    header.write("        ", 148); // the checksum counts itself as spaces
    header.write("0", 156);
    header.write("ustar\u000000", 257);
    const sum = header.reduce((total, byte) => total + byte, 0);
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    const padding = (512 - (data.byteLength % 512)) % 512;
    blocks.push(header, Buffer.from(data), Buffer.alloc(padding));
  }
  return Buffer.concat([...blocks, Buffer.alloc(1024)]);
}

/**
 * The archives `check` scans when a backend sees inside containers: formats clamd decodes
 * itself (tar.gz, zip) and one it answers `OK` for (brotli: only the unpacking finds it), each
 * written here with Node's own zlib.
 */
export const archiveCheckCases: readonly ArchiveCheckCase[] = [
  {
    label: "EICAR in a tar.gz",
    filename: "eicar.tar.gz",
    bytes: () => gzipSync(tarArchive([{ name: "eicar.com", data: eicarBytes() }])),
    expected: "malicious",
  },
  {
    label: "EICAR in a zip",
    filename: "eicar.zip",
    bytes: () =>
      zipArchive([
        { name: "readme.txt", data: Buffer.from("Nothing to see.\n") },
        { name: "tools/eicar.com", data: eicarBytes() },
      ]),
    expected: "malicious",
  },
  {
    label: "EICAR in a brotli stream (clamd answers OK for brotli)",
    filename: "eicar.com.br",
    bytes: () => brotliCompressSync(eicarBytes()),
    expected: "malicious",
  },
  {
    label: "benign tar.gz",
    filename: "notes.tar.gz",
    bytes: () =>
      gzipSync(
        tarArchive([{ name: "notes.txt", data: Buffer.from("Meeting notes, nothing more.\n") }]),
      ),
    expected: "benign",
  },
];

/** `name=verdict`, with the member it found something in. */
function backendLine(backend: NonNullable<ScanResult["metadata"]["backends"]>[number]): string {
  const unpack = backend.metadata?.unpack as { detected_in?: unknown } | undefined;
  const member = typeof unpack?.detected_in === "string" ? `(in ${unpack.detected_in})` : "";
  return `${backend.name}=${backend.verdict}${member}${backend.error_code ? `(${backend.error_code})` : ""}`;
}

/**
 * Scans one archive case and prints PASS or FAIL: the engine's verdict and that of every backend
 * in `unpacking` must be the expected one. Resolves true when they are.
 */
async function checkArchiveCase(
  backends: Pick<EngineBackends, "scanner">,
  unpacking: ReadonlySet<string>,
  out: NodeJS.WritableStream,
  archive: ArchiveCheckCase,
): Promise<boolean> {
  try {
    const result = await backends.scanner.scan(
      artifactFromBytes(archive.bytes(), { filename: archive.filename }),
      { deadline: Date.now() + 30_000 },
    );
    const provenance = result.metadata.backends ?? [];
    const ok =
      result.verdict === archive.expected &&
      [...unpacking].every(
        (name) => provenance.find((backend) => backend.name === name)?.verdict === archive.expected,
      );
    out.write(
      `${ok ? "PASS" : "FAIL"} ${archive.label}: ${result.verdict} (expected ${archive.expected} by every unpacking backend) ${provenance.map(backendLine).join(" ")}\n`,
    );
    return ok;
  } catch (error) {
    out.write(`FAIL ${archive.label}: ${(error as Error).message}\n`);
    return false;
  }
}

/**
 * The backends of `unpacking` that find EICAR itself: a backend without the signature (a
 * module that does not detect test files) is not held to find it in an archive either.
 */
async function eicarDetectors(
  backends: Pick<EngineBackends, "scanner">,
  unpacking: ReadonlySet<string>,
): Promise<Set<string>> {
  const result = await backends.scanner
    .scan(artifactFromBytes(eicarBytes(), { filename: "eicar.com" }), {
      deadline: Date.now() + 30_000,
    })
    .catch(() => undefined);
  return new Set(
    (result?.metadata.backends ?? [])
      .filter((backend) => unpacking.has(backend.name) && backend.verdict === "malicious")
      .map((backend) => backend.name),
  );
}

/**
 * `check`'s archive cases ({@link archiveCheckCases}) against the backends that see inside
 * containers (for a malicious case, those of them that detect EICAR itself); a note instead
 * when none does (UNPACK=false). Resolves true when all passed.
 */
export async function checkArchives(
  backends: Pick<EngineBackends, "scanner" | "running">,
  out: NodeJS.WritableStream,
  cases: readonly ArchiveCheckCase[] = archiveCheckCases,
): Promise<boolean> {
  const unpacking = new Set(
    backends.running.filter((backend) => backend.unpacks).map((backend) => backend.name),
  );
  if (unpacking.size === 0) {
    out.write("     archives: not checked, no backend sees inside containers (UNPACK=false)\n");
    return true;
  }
  const detectors = await eicarDetectors(backends, unpacking);
  let healthy = true;
  for (const archive of cases) {
    const held = archive.expected === "malicious" ? detectors : unpacking;
    if (held.size === 0)
      out.write(
        `SKIP ${archive.label}: no backend that sees inside containers detects EICAR itself\n`,
      );
    else healthy = (await checkArchiveCase(backends, held, out, archive)) && healthy;
  }
  return healthy;
}
