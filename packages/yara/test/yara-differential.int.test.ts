import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { artifactFromFile } from "@engine/core";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createYaraScanner, type YaraScanner } from "../src/index.js";

const run = promisify(execFile);

// Rules written for this test, one feature each, so that a difference names the feature.
const rules = String.raw`
rule text_plain { strings: $a = "malicious-marker" condition: $a }
rule text_nocase { strings: $a = "NoCaSe-Marker" nocase condition: $a }
rule text_wide { strings: $a = "wide-marker" wide condition: $a }
rule text_fullword { strings: $a = "word" fullword condition: $a }
rule hex_jump { strings: $h = { 4D 5A [2-8] 50 45 } condition: $h }
rule hex_wildcard { strings: $h = { DE AD ?? EF } condition: $h }
rule hex_nibble { strings: $h = { C0 F? 1E } condition: $h }
rule hex_alternation { strings: $h = { CA FE ( BA BE | D0 0D ) } condition: $h }
rule regex_url { strings: $r = /https?:\/\/[a-z]{3,10}\.example\/[0-9]+/ condition: $r }
rule regex_class { strings: $r = /id=[A-F0-9]{8}\b/ condition: $r }
rule count_many { strings: $a = "repeat-me" condition: #a >= 3 }
rule count_exact { strings: $a = "twice" condition: #a == 2 }
rule offset_start { strings: $a = "HEADER" condition: $a at 0 }
rule offset_first { strings: $a = "needle" condition: @a[1] < 100 }
rule offset_range { strings: $a = "range-marker" condition: $a in (100..200) }
rule size_small { condition: filesize < 1KB }
rule size_range { condition: filesize > 4KB and filesize < 8KB }
rule mz_header { condition: uint16(0) == 0x5A4D }
rule mz_and_text { strings: $a = "malicious-marker" condition: uint16(0) == 0x5A4D and $a }
rule big_endian { condition: filesize >= 4 and uint32be(0) == 0x7F454C46 }
private rule private_marker { strings: $a = "private-marker" condition: $a }
rule uses_private { condition: private_marker }
rule two_of_three { strings: $a = "alpha-x" $b = "beta-x" $c = "gamma-x" condition: 2 of them }
rule all_of_them { strings: $a = "alpha-x" $b = "gamma-x" condition: all of them }
rule loop_bytes { condition: filesize > 16 and for any i in (0..15) : ( uint8(i) == 0x00 ) }
`;

const markers = [
  "malicious-marker",
  "nOcAsE-mArKeR",
  "w\0i\0d\0e\0-\0m\0a\0r\0k\0e\0r\0",
  " word ",
  "wording",
  "MZ\x90\x00\x00PE",
  "\xDE\xAD\x42\xEF",
  "\xC0\xF7\x1E",
  "\xCA\xFE\xBA\xBE",
  "\xCA\xFE\xD0\x0D",
  "http://abc.example/123",
  "id=DEADBEEF ",
  "repeat-me",
  "twice",
  "needle",
  "range-marker",
  "private-marker",
  "alpha-x",
  "beta-x",
  "gamma-x",
];

let directory: string;
let scanner: YaraScanner;
let native: YaraScanner;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-yara-differential-"));
  await mkdir(join(directory, "files"));
  await writeFile(join(directory, "differential.yar"), rules);
  // Files generated from a fixed seed: random bytes, markers at random offsets, some headers.
  const files = fc.sample(
    fc.record({
      size: fc.integer({ min: 0, max: 12 * 1024 }),
      seed: fc.integer(),
      inserts: fc.array(
        fc.record({
          marker: fc.integer({ min: 0, max: markers.length - 1 }),
          at: fc.nat(),
          times: fc.integer({ min: 1, max: 4 }),
        }),
        { maxLength: 6 },
      ),
      header: fc.constantFrom("", "MZ", "HEADER", "\x7FELF"),
    }),
    { numRuns: 250, seed: 20261121 },
  );
  for (const [index, file] of files.entries()) {
    const random =
      fc.sample(fc.uint8Array({ minLength: file.size, maxLength: file.size }), {
        numRuns: 1,
        seed: file.seed,
      })[0] ?? new Uint8Array();
    const bytes = Buffer.from(random);
    for (const insert of file.inserts) {
      const marker = Buffer.from(markers[insert.marker] ?? "", "latin1");
      for (let time = 0; time < insert.times; time += 1) {
        if (bytes.length < marker.length) break;
        marker.copy(bytes, (insert.at + time * 997) % (bytes.length - marker.length + 1));
      }
    }
    if (bytes.length >= file.header.length) Buffer.from(file.header, "latin1").copy(bytes, 0);
    await writeFile(join(directory, "files", `file-${String(index).padStart(3, "0")}.bin`), bytes);
  }
  scanner = createYaraScanner({
    ruleFiles: [join(directory, "differential.yar")],
    onCompileError: "fail",
    onDiagnostics: () => {},
  });
  await scanner.setup?.();
  native = createYaraScanner({
    ruleFiles: [join(directory, "differential.yar")],
    engine: "native",
    onCompileError: "fail",
    onDiagnostics: () => {},
  });
  await native.setup?.();
});
afterAll(async () => {
  await scanner?.close?.();
  await native?.close?.();
  await rm(directory, { recursive: true, force: true });
});

it("matches exactly what the Debian yara CLI matches, on every generated file, with both engines", async () => {
  const { stdout } = await run(
    "yara",
    ["--no-warnings", join(directory, "differential.yar"), join(directory, "files")],
    {
      maxBuffer: 16 * 1024 * 1024,
    },
  );
  const expected = new Map<string, Set<string>>();
  for (const line of stdout.split("\n").filter(Boolean)) {
    const [rule, path] = line.split(" ");
    if (!rule || !path) continue;
    const name = path.split("/").pop() as string;
    expected.set(name, (expected.get(name) ?? new Set()).add(rule));
  }
  const names = (await readdir(join(directory, "files"))).sort();
  expect(names.length).toBe(250);
  const differences: string[] = [];
  let matched = 0;
  for (const [engine, subject] of [
    ["wasm", scanner],
    ["native", native],
  ] as const)
    for (const name of names) {
      const result = await subject.scan(artifactFromFile(join(directory, "files", name)));
      const ours = new Set(
        ((result.metadata.yara as { matches: Array<{ rule: string }> }).matches ?? []).map(
          (match) => match.rule,
        ),
      );
      const theirs = expected.get(name) ?? new Set<string>();
      matched += ours.size;
      const a = [...ours].sort().join(",");
      const b = [...theirs].sort().join(",");
      if (a !== b) differences.push(`${engine} ${name}: ours [${a}] yara [${b}]`);
    }
  console.log(
    `${matched} matches; rules seen: ${[...new Set([...expected.values()].flatMap((set) => [...set]))].sort().join(" ")}`,
  );
  expect(differences).toEqual([]);
  expect(matched).toBeGreaterThan(500); // the generated files do exercise the rules (both engines)
  expect(native.engine).toBe("native");
  expect([...expected.values()].some((set) => set.has("uses_private"))).toBe(true);
});
