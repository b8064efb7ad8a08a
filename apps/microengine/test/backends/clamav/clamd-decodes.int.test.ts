import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { type ClamavScanner, createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import { artifactFromFile, eicarTestString } from "@engine/core";
import { type ContainerFormat, type UnpackedMember, unpack } from "@engine/unpack";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBackends } from "../../../src/backends/build-backends.js";
import {
  clamdDecodes,
  clamdDecodesItself,
  clamdScansMember,
} from "../../../src/backends/clamav/clamd-decodes.js";
import { loadConfig } from "../../../src/config/config.js";

// Measures what clamd decodes itself: EICAR inside each format and method, written by the real
// tools, scanned by a managed clamd. The table in clamd-decodes.ts must say what clamd did, so
// a clamd upgrade that changes it fails here, loudly.
const run = promisify(execFile);
const memberName = "member.txt";

/** EICAR, then compressible lines: every method compresses it, so no EICAR is left in plain bytes. */
const member = Buffer.from(
  `${eicarTestString}\n${Array.from({ length: 200 }, (_, line) => `filler line ${line} of a compressible member, the same words again\n`).join("")}`,
);

interface MeasuredCase {
  /** What the table is asked about. */
  container: ContainerFormat;
  /** Writes the fixture in `directory` and returns its path. */
  build(directory: string): Promise<string>;
  /** True when the member sits in plain bytes (no compression): a match proves less. */
  plain?: boolean;
  /** Data a standard reader does not show (appended). */
  hidden?: boolean;
}

/** A ustar header block (checksum filled in) for `name` of `type`, declaring `size` bytes. */
function ustarHeader(name: string, type: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, "utf8");
  header.write("0000644\0", 100);
  header.write("0000000\0", 108);
  header.write("0000000\0", 116);
  header.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  header.write("00000000000\0", 136);
  header.write("        ", 148);
  header.write(type, 156);
  header.write("ustar\u000000", 257);
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return header;
}

const padded = (data: Buffer) =>
  Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

/**
 * A tar whose member's size only a pax record gives (its ustar size is 0), as GNU tar reads
 * it; the member is gzipped EICAR, so nothing matches in the plain bytes.
 */
function paxSizedTar(content: Buffer): Buffer {
  const data = gzipSync(content);
  const body = ` size=${data.length}\n`;
  let record = `${body.length + 2}${body}`;
  record = `${body.length + String(record.length).length}${body}`;
  return Buffer.concat([
    ustarHeader("PaxHeaders/member.txt.gz", "x", record.length),
    padded(Buffer.from(record)),
    ustarHeader("member.txt.gz", "0", 0),
    padded(data),
    Buffer.alloc(1024),
  ]);
}

const tool =
  (command: string, ...args: string[]) =>
  (directory: string) =>
    run(command, args, { cwd: directory });
const archive =
  (name: string, write: (directory: string) => Promise<unknown>) => async (directory: string) => {
    await write(directory);
    return join(directory, name);
  };
const sevenZip = (name: string, ...switches: string[]) =>
  archive(name, tool("7zz", "a", "-bso0", "-bsp0", ...switches, name, memberName));
const piped = (name: string, command: string, ...args: string[]) =>
  archive(name, async (directory) => {
    const { stdout } = await run(command, [...args, memberName], {
      cwd: directory,
      encoding: "buffer",
      maxBuffer: 1 << 24,
    });
    await writeFile(join(directory, name), stdout);
  });

const cases: Record<string, MeasuredCase> = {
  "zip stored": {
    container: "zip",
    plain: true,
    build: archive("s.zip", tool("zip", "-q", "-0", "s.zip", memberName)),
  },
  "zip deflate": {
    container: "zip",
    build: archive("d.zip", tool("zip", "-q", "-Z", "deflate", "d.zip", memberName)),
  },
  "zip bzip2": {
    container: "zip",
    build: archive("b.zip", tool("zip", "-q", "-Z", "bzip2", "b.zip", memberName)),
  },
  "zip deflate64": { container: "zip", build: sevenZip("d64.zip", "-tzip", "-mm=Deflate64") },
  "zip LZMA": { container: "zip", build: sevenZip("l.zip", "-tzip", "-mm=LZMA") },
  "zip PPMd": { container: "zip", build: sevenZip("p.zip", "-tzip", "-mm=PPMd") },
  "zip xz": { container: "zip", build: sevenZip("x.zip", "-tzip", "-mm=XZ") },
  "7z copy": { container: "7z", plain: true, build: sevenZip("c.7z", "-t7z", "-m0=Copy") },
  "7z LZMA": { container: "7z", build: sevenZip("l.7z", "-t7z", "-m0=LZMA") },
  "7z LZMA2": { container: "7z", build: sevenZip("l2.7z", "-t7z", "-m0=LZMA2") },
  "7z BCJ + LZMA2": { container: "7z", build: sevenZip("bcj.7z", "-t7z", "-m0=BCJ", "-m1=LZMA2") },
  "7z Delta + LZMA": {
    container: "7z",
    build: sevenZip("delta.7z", "-t7z", "-m0=Delta", "-m1=LZMA"),
  },
  "7z BZip2": { container: "7z", build: sevenZip("b.7z", "-t7z", "-m0=BZip2") },
  "7z PPMd": { container: "7z", build: sevenZip("p.7z", "-t7z", "-m0=PPMd") },
  "7z Deflate": { container: "7z", build: sevenZip("d.7z", "-t7z", "-m0=Deflate") },
  gzip: { container: "gzip", build: piped("m.gz", "gzip", "-c") },
  bzip2: { container: "bzip2", build: piped("m.bz2", "bzip2", "-c") },
  xz: { container: "xz", build: piped("m.xz", "xz", "-c") },
  "LZMA-alone": { container: "lzma", build: piped("m.lzma", "lzma", "-c") },
  lzip: { container: "lzip", build: piped("m.lz", "lzip", "-c") },
  zstd: { container: "zstd", build: piped("m.zst", "zstd", "-q", "-c") },
  brotli: { container: "brotli", build: piped("m.br", "brotli", "-c") },
  tar: {
    container: "tar",
    plain: true,
    build: archive("m.tar", tool("tar", "-cf", "m.tar", memberName)),
  },
  "tar, a pax size over a ustar size of 0": {
    container: "tar",
    build: async (directory) => {
      await writeFile(join(directory, "pax.tar"), paxSizedTar(member));
      return join(directory, "pax.tar");
    },
  },
  "bzip2, two streams": {
    container: "bzip2",
    build: async (directory) => {
      await writeFile(join(directory, "lead.txt"), "a benign text\n");
      const first = await run("bzip2", ["-c", "lead.txt"], { cwd: directory, encoding: "buffer" });
      const second = await run("bzip2", ["-c", memberName], { cwd: directory, encoding: "buffer" });
      await writeFile(join(directory, "two.bz2"), Buffer.concat([first.stdout, second.stdout]));
      return join(directory, "two.bz2");
    },
  },
  iso: {
    container: "iso",
    plain: true,
    build: archive("m.iso", async (directory) => {
      await mkdir(join(directory, "iso"));
      await writeFile(join(directory, "iso", memberName), member);
      await run("xorriso", ["-as", "mkisofs", "-quiet", "-o", "m.iso", "iso"], { cwd: directory });
    }),
  },
  "cab stored": {
    container: "cab",
    plain: true,
    build: archive("n.cab", tool("gcab", "-c", "n.cab", memberName)),
  },
  "cab MSZip": {
    container: "cab",
    build: archive("z.cab", tool("gcab", "-cz", "z.cab", memberName)),
  },
  "zip appended to a gzip": {
    container: "gzip",
    hidden: true,
    build: async (directory) => {
      await writeFile(join(directory, "lead.txt"), "a benign text\n");
      await run("zip", ["-q", "-Z", "deflate", "tail.zip", memberName], { cwd: directory });
      const { stdout: lead } = await run("gzip", ["-c", "lead.txt"], {
        cwd: directory,
        encoding: "buffer",
      });
      const joined = Buffer.concat([lead, await readFile(join(directory, "tail.zip"))]);
      await writeFile(join(directory, "appended.gz"), joined);
      return join(directory, "appended.gz");
    },
  },
};

/** 7-Zip's `Method` of the archive's member (what the 7-Zip based extractors report). */
async function sevenZipMethod(path: string): Promise<string | undefined> {
  const { stdout } = await run("7zz", ["l", "-slt", path]);
  const methods = [...stdout.matchAll(/^Method = (.+)$/gm)].map((match) => match[1] ?? "");
  return methods.at(-1);
}

/** The members `@engine/unpack` finds at depth 1 (none while it does not decode the format). */
async function depthOneMembers(path: string) {
  const members: Array<Pick<UnpackedMember, "container" | "method" | "hidden" | "path">> = [];
  for await (const event of unpack(artifactFromFile(path)))
    if (event.kind === "member" && event.member.depth === 1) {
      const { container, method, hidden } = event.member;
      members.push({ container, method, hidden, path: event.member.path });
    }
  return members;
}

let directory: string;
let clamd: ManagedClamd;
let clamav: ClamavScanner;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-clamd-decodes-"));
  await writeFile(join(directory, memberName), member);
  clamd = await startManagedClamd({ tcp: false });
  clamav = createClamavScanner(clamd.clientOptions());
}, 120_000);
afterAll(async () => {
  await clamav?.close?.();
  await clamd?.[Symbol.asyncDispose]();
  await rm(directory, { recursive: true, force: true });
});

describe("what clamd decodes itself (the table of clamd-decodes.ts, measured)", () => {
  const measured: string[] = [];
  afterAll(() => {
    // The measurement, for the record (and the README).
    console.log(`clamd ${clamd ? "" : "(not started) "}finds EICAR in:\n${measured.join("\n")}`);
  });

  for (const [label, measuredCase] of Object.entries(cases))
    it(`${label}: the table says what clamd answers`, async () => {
      const path = await measuredCase.build(directory);
      const bytes = await readFile(path);
      // Compressed: EICAR is not in the plain bytes, so a detection means clamd decoded it.
      if (!measuredCase.plain) expect(bytes.includes(eicarTestString)).toBe(false);
      const members = await depthOneMembers(path);
      const decoded = members.find((each) => each.hidden) ?? members[0];
      // zip, 7z and cab: as 7-Zip lists it; the others as the extractors name it (tar: ustar or
      // pax, bzip2: one stream or more).
      const method =
        measuredCase.container === "zip" ||
        measuredCase.container === "7z" ||
        measuredCase.container === "cab"
          ? await sevenZipMethod(path)
          : decoded?.method;
      const result = await clamav.scan(artifactFromFile(path), { deadline: Date.now() + 30_000 });
      const found = result.verdict === "malicious";
      measured.push(`  ${label.padEnd(24)} ${method ?? ""} ${found ? "found" : "OK"}`);
      const asked = { container: measuredCase.container, method, hidden: measuredCase.hidden };
      // The table: a member goes to clamd exactly when clamd does not find it itself.
      expect({ label, method, found }).toEqual({ label, method, found: !clamdScansMember(asked) });
      // And the extractors name containers and methods as the table does, once they decode it.
      if (decoded)
        expect({ label, sent: clamdScansMember(decoded), decoded }).toEqual({
          label,
          sent: !found,
          decoded,
        });
    });

  it("covers every format of the table that a Debian tool can write", () => {
    const measuredFormats = new Set(Object.values(cases).map((each) => each.container));
    const unmeasured = Object.keys(clamdDecodes).filter(
      (format) => !measuredFormats.has(format as ContainerFormat),
    );
    expect(unmeasured.sort()).toEqual(["cfb", "rar"]);
    // Unmeasured formats send their members to clamd.
    for (const format of unmeasured)
      expect(clamdDecodesItself(format as ContainerFormat, "anything")).toBe(false);
  });
});

describe("the engine's ClamAV with UNPACK", () => {
  it("finds EICAR in what clamd answers OK for (a brotli), naming the member; UNPACK=false keeps clamd's OK", async () => {
    const path = await cases.brotli?.build(directory);
    const scan = async (environment: Record<string, string>) => {
      const backends = await buildBackends(
        loadConfig({
          CLAMD_SOCKET: clamd.socketPath ?? "",
          ENGINE_BACKENDS: "clamav",
          ...environment,
        }),
        pino({ level: "silent" }),
      );
      try {
        const result = await backends.scanner.scan(artifactFromFile(path ?? ""), {
          deadline: Date.now() + 30_000,
        });
        return result.metadata.backends?.find((backend) => backend.name === "clamav");
      } finally {
        await backends.dispose();
      }
    };
    const unpacking = await scan({});
    expect(unpacking?.verdict).toBe("malicious");
    expect(unpacking?.metadata?.unpack).toMatchObject({ members: 1, detected_in: "m.br!/m" });
    expect((await scan({ UNPACK: "false" }))?.verdict).toBe("benign");
  });
});
