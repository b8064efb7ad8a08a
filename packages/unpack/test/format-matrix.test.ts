// Every container format against the YARA scanner, with a payload only a YARA rule detects
// (a marker at the start of a file: the container's own bytes never start with it, so only
// the member can match). For each format: found with its member path, nested (inside a
// tar.gz inside a zip), at depth 17 (found) and 18 (LIMITS), past maxMemberBytes (LIMITS),
// and encrypted where the format encrypts (ENCRYPTED). Fixtures are written by the real tools
// (zip, 7zz, tar, gzip, bzip2, xz, lzma, lzip, zstd, pzstd, brotli, xorriso, gcab), RAR and
// compound files by hand (no writer in Debian) and by `cfb`. The worker runs from the build:
// run `pnpm build` in this package first.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { artifactFromBytes, type Scanner, type ScanResult } from "@engine/core";
import { createYaraScanner } from "@engine/yara";
import CFB from "cfb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUnpackingScanner, type UnpackReport } from "../src/index.js";
import { gzipLayers } from "./fixtures.js";
import {
  cabinet,
  compressed,
  isoImage,
  rarStored,
  requireBuiltWorker,
  scratchDirectory,
  sevenZipArchive,
  tool,
  writeTree,
} from "./seven-zip-fixtures.js";

const marker = "ENGINE-FORMAT-MATRIX-7f3a9c";
const rule = `rule format_matrix_marker {
  meta: description = "a member starting with the matrix marker"
  strings: $m = "${marker}"
  condition: $m at 0
}`;

/** The payload only the rule detects: the marker first, then text (compressible). */
function payload(bytes = 4096): Buffer {
  const text = Buffer.alloc(bytes, "filler line of an ordinary text file\n");
  Buffer.from(`${marker}\n`).copy(text);
  return text;
}

interface Format {
  /** Its row in the table. */
  label: string;
  /** The file name the sample has (formats with no magic number need it: brotli). */
  filename: string;
  /** The sample holding `content` (as `payload.txt` where the format has names). */
  make: (content: Buffer) => Buffer;
  /** Where the payload comes out, after `<filename>!/`. */
  member: string;
  /** The same sample, encrypted: its payload skipped ENCRYPTED. */
  encrypted?: (content: Buffer) => Buffer;
}

let scratch: ReturnType<typeof scratchDirectory>;

/** What `command` writes to `output` in a directory holding `files`. */
function written(
  files: Record<string, Uint8Array | string>,
  command: string,
  args: string[],
  output: string,
) {
  const directory = mkdtempSync(join(scratch.path, "in-"));
  writeTree(directory, files);
  tool(command, args, { cwd: directory });
  return readFileSync(join(directory, output));
}

const named = (content: Buffer) => ({ "payload.txt": content });

const formats: Format[] = [
  {
    label: "zip (deflate)",
    filename: "sample.zip",
    make: (content) =>
      written(named(content), "zip", ["-q", "-X", "out.zip", "payload.txt"], "out.zip"),
    member: "payload.txt",
    encrypted: (content) =>
      written(
        named(content),
        "zip",
        ["-q", "-X", "-P", "infected", "out.zip", "payload.txt"],
        "out.zip",
      ),
  },
  {
    label: "zip (stored)",
    filename: "sample.zip",
    make: (content) =>
      written(named(content), "zip", ["-q", "-X", "-0", "out.zip", "payload.txt"], "out.zip"),
    member: "payload.txt",
  },
  ...(["LZMA", "PPMd", "BZip2", "Deflate64"] as const).map(
    (method): Format => ({
      label: `zip (${method})`,
      filename: "sample.zip",
      make: (content) =>
        sevenZipArchive(scratch.path, "out.zip", named(content), ["-tzip", `-mm=${method}`]),
      member: "payload.txt",
      encrypted: (content) =>
        sevenZipArchive(scratch.path, "out.zip", named(content), [
          "-tzip",
          `-mm=${method}`,
          "-mem=AES256",
          "-pinfected",
        ]),
    }),
  ),
  {
    label: "JAR",
    filename: "sample.jar",
    make: (content) =>
      written(
        { "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\n", "payload.txt": content },
        "zip",
        ["-q", "-X", "out.zip", "META-INF/MANIFEST.MF", "payload.txt"],
        "out.zip",
      ),
    member: "payload.txt",
  },
  {
    label: "gzip",
    filename: "payload.txt.gz",
    make: (content) => tool("gzip", ["-c", "-n"], { input: content }),
    member: "payload.txt",
  },
  ...(["bzip2", "xz", "lzma", "lzip"] as const).map(
    (command): Format => ({
      label: command === "lzma" ? "LZMA-alone" : command,
      filename: `payload.txt.${{ bzip2: "bz2", xz: "xz", lzma: "lzma", lzip: "lz" }[command]}`,
      make: (content) => compressed(command, content),
      member: "payload.txt",
    }),
  ),
  {
    label: "zstd",
    filename: "payload.txt.zst",
    make: (content) => tool("zstd", ["-q", "-c"], { input: content }),
    member: "payload.txt",
  },
  {
    label: "zstd (pzstd, unnamed)",
    filename: "upload.bin",
    make: (content) => tool("pzstd", ["-q", "-c"], { input: content }),
    member: "content",
  },
  {
    label: "brotli (by its name)",
    filename: "payload.txt.br",
    make: (content) => tool("brotli", ["-c"], { input: content }),
    member: "payload.txt",
  },
  {
    label: "tar",
    filename: "sample.tar",
    make: (content) => written(named(content), "tar", ["-cf", "out", "payload.txt"], "out"),
    member: "payload.txt",
  },
  ...(
    [
      ["LZMA2", []],
      ["BZip2", ["-m0=BZip2"]],
      ["PPMd", ["-m0=PPMd"]],
      ["Delta + LZMA", ["-m0=Delta", "-m1=LZMA"]],
    ] as const
  ).map(
    ([method, flags]): Format => ({
      label: `7z (${method})`,
      filename: "sample.7z",
      make: (content) => sevenZipArchive(scratch.path, "out.7z", named(content), [...flags]),
      member: "payload.txt",
      encrypted: (content) =>
        sevenZipArchive(scratch.path, "out.7z", named(content), [...flags, "-pinfected"]),
    }),
  ),
  {
    label: "RAR 4 (stored)",
    filename: "sample.rar",
    make: (content) => rarStored(4, [{ name: "payload.txt", content }]),
    member: "payload.txt",
    encrypted: (content) => rarStored(4, [{ name: "payload.txt", content, encrypted: true }]),
  },
  {
    label: "RAR 5 (stored)",
    filename: "sample.rar",
    make: (content) => rarStored(5, [{ name: "payload.txt", content }]),
    member: "payload.txt",
  },
  {
    label: "ISO 9660",
    filename: "sample.iso",
    make: (content) => isoImage(scratch.path, named(content)),
    member: "payload.txt",
  },
  ...([true, false] as const).map(
    (compress): Format => ({
      label: compress ? "CAB (MSZIP)" : "CAB (stored)",
      filename: "sample.cab",
      make: (content) => cabinet(scratch.path, named(content), compress),
      member: "payload.txt",
    }),
  ),
  {
    label: "OLE/CFB stream",
    filename: "sample.msi",
    make: (content) => {
      const container = CFB.utils.cfb_new();
      CFB.utils.cfb_add(container, "/Storage/payload.txt", content);
      return Buffer.from(CFB.write(container, { type: "buffer" }) as Uint8Array);
    },
    member: "Storage/payload.txt",
  },
];

let scanner: Scanner;
let tight: Scanner;
/** What each format gave, for the table printed at the end. */
const table = new Map<string, Record<string, string>>();

beforeAll(async () => {
  requireBuiltWorker();
  scratch = scratchDirectory();
  scanner = createUnpackingScanner(createYaraScanner({ rules: rule }));
  tight = createUnpackingScanner(createYaraScanner({ rules: rule }), {
    limits: { maxMemberBytes: 16 * 1024 },
  });
  await scanner.setup?.();
  await tight.setup?.();
});

afterAll(async () => {
  await scanner?.close?.();
  await tight?.close?.();
  scratch?.remove();
  const columns = ["found", "nested", "depth 17", "depth 18", "maxMemberBytes", "encrypted"];
  const lines = [...table].map(
    ([label, cells]) =>
      `| ${label} | ${columns.map((column) => cells[column] ?? "-").join(" | ")} |`,
  );
  console.log(
    [`| format | ${columns.join(" | ")} |`, `|${"---|".repeat(columns.length + 1)}`, ...lines].join(
      "\n",
    ),
  );
});

function note(label: string, column: string, result: ScanResult): void {
  const cells = table.get(label) ?? {};
  cells[column] =
    result.verdict === "malicious"
      ? "malicious"
      : `${result.verdict} ${result.metadata.comments?.[0] ?? ""}`.trim();
  table.set(label, cells);
}

const unpackReport = (result: ScanResult) => result.metadata.unpack as UnpackReport;

/** A zip (zip's own) holding a tar.gz (tar -z) holding `file` under `name`. */
function nestedInTarGzInZip(name: string, file: Buffer): Buffer {
  const directory = mkdtempSync(join(scratch.path, "nest-"));
  writeFileSync(join(directory, name), file);
  tool("tar", ["-czf", "inner.tar.gz", name], { cwd: directory });
  tool("zip", ["-q", "-X", "nested.zip", "inner.tar.gz"], { cwd: directory });
  return readFileSync(join(directory, "nested.zip"));
}

describe.each(formats)("$label: a member only a YARA rule detects", (format) => {
  const scan = (target: Scanner, bytes: Buffer, filename = format.filename) =>
    target.scan(artifactFromBytes(bytes, { filename }));

  it("is found, with its member path; the same file alone is found by YARA, the container is not", async () => {
    const sample = format.make(payload());
    expect(sample.subarray(0, marker.length).toString()).not.toBe(marker);
    const result = await scan(scanner, sample);
    note(format.label, "found", result);
    expect(result.verdict).toBe("malicious");
    expect(unpackReport(result).detected_in).toBe(`${format.filename}!/${format.member}`);
    expect(result.metadata.malware_family).toBe("format_matrix_marker");
  }, 30_000);

  it("is found nested in a tar.gz in a zip", async () => {
    const nested = nestedInTarGzInZip(format.filename, format.make(payload()));
    const result = await scan(scanner, nested, "nested.zip");
    note(format.label, "nested", result);
    expect(result.verdict).toBe("malicious");
    expect(unpackReport(result).detected_in).toBe(
      `nested.zip!/inner.tar.gz!/inner.tar!/${format.filename}!/${format.member}`,
    );
  }, 30_000);

  it("is found at depth 17, and is unknown SKIPPED:LIMITS at depth 18 (maxDepth), never benign", async () => {
    const sample = format.make(payload());
    // Named as gzip names them (each layer's member keeps the name without its .gz).
    const layered = (levels: number) => `${format.filename}${".gz".repeat(levels)}`;
    const deep = await scan(scanner, gzipLayers(sample, 16), layered(16));
    note(format.label, "depth 17", deep);
    expect(deep.verdict).toBe("malicious");
    expect(unpackReport(deep).detected_in?.split("!/")).toHaveLength(18);
    const deeper = await scan(scanner, gzipLayers(sample, 17), layered(17));
    note(format.label, "depth 18", deeper);
    expect(deeper.verdict).toBe("unknown");
    expect(deeper.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
    expect(unpackReport(deeper).skipped[0]?.limit).toBe("maxDepth");
  }, 30_000);

  it("is unknown SKIPPED:LIMITS past maxMemberBytes, never benign", async () => {
    const result = await scan(tight, format.make(payload(64 * 1024)));
    note(format.label, "maxMemberBytes", result);
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
    expect(unpackReport(result).skipped[0]?.limit).toBe("maxMemberBytes");
  }, 30_000);

  // Only formats that encrypt have the case (not a skipped test for the others).
  const { encrypted } = format;
  if (encrypted)
    it("is unknown SKIPPED:ENCRYPTED when encrypted", async () => {
      const result = await scan(scanner, encrypted(payload()));
      note(format.label, "encrypted", result);
      expect(result.verdict).toBe("unknown");
      expect(result.metadata.comments?.[0]).toBe("SKIPPED:ENCRYPTED");
    }, 30_000);
});

describe("honest containers of benign files", () => {
  it("stay benign in every format", async () => {
    const clean = Buffer.from("an ordinary text file\n".repeat(100));
    for (const format of formats) {
      const result = await scanner.scan(
        artifactFromBytes(format.make(clean), { filename: format.filename }),
      );
      expect(`${format.label}: ${result.verdict}`).toBe(`${format.label}: benign`);
      expect(unpackReport(result).skipped_count).toBe(0);
    }
  }, 120_000);
});
