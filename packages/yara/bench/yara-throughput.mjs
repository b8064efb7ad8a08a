// Benchmark: @engine/yara against the native `yara` CLI, side by side in one run, on the same
// rule files and the same target files. Reports, per public rule collection:
//   - files read / compiled by YARA-X, compile time;
//   - throughput of our scanner (WebAssembly engine, worker threads) vs `yara -p <cores>`;
//   - the per-scan overhead of the WebAssembly engine by rule count.
// The rule collections are NOT part of this repository: point ENGINE_RULESETS_DIR at a folder
// holding yara-rules/ and signature-base/yara/ (default: ../shared/rulesets beside the repo).
// Targets: files copied from /usr/bin (BENCH_TARGET_MB, default 64; BENCH_TARGET_DIR to choose).
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { artifactFromBytes, artifactFromFile } from "@engine/core";
import { createYaraScanner, loadRuleSources } from "@engine/yara";

const run = promisify(execFile);
const cores = availableParallelism();
const rulesets = resolve(
  process.env.ENGINE_RULESETS_DIR ?? join(import.meta.dirname, "../../../../shared/rulesets"),
);
const targetMegabytes = Number(process.env.BENCH_TARGET_MB ?? 64);
const sourceDirectory = process.env.BENCH_TARGET_DIR ?? "/usr/bin";
if (!existsSync(rulesets)) {
  console.log(
    `no rule collections at ${rulesets}: set ENGINE_RULESETS_DIR (see the package README)`,
  );
  process.exit(0);
}

const work = await mkdtemp(join(tmpdir(), "engine-yara-bench-"));
try {
  // Targets: regular files of the source directory, by name, up to targetMegabytes.
  const targets = join(work, "targets");
  await run("mkdir", ["-p", targets]);
  let total = 0;
  let count = 0;
  for (const name of (await readdir(sourceDirectory)).sort()) {
    const path = join(sourceDirectory, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile() || info.size > 16 * 2 ** 20 || info.size === 0) continue;
    if (total + info.size > targetMegabytes * 2 ** 20) break;
    await copyFile(path, join(targets, name));
    total += info.size;
    count += 1;
  }
  const targetFiles = (await readdir(targets)).map((name) => join(targets, name));
  console.log(
    `\ntargets: ${count} files, ${(total / 2 ** 20).toFixed(1)} MB from ${sourceDirectory}; ${cores} cores; ${process.version}\n`,
  );

  const rows = [];
  const overheadRows = [];
  for (const [label, directory] of [
    ["Yara-Rules", join(rulesets, "yara-rules")],
    ["signature-base", join(rulesets, "signature-base", "yara")],
  ]) {
    const { sources } = await loadRuleSources({ rulesDir: directory });
    let started = performance.now();
    const scanner = createYaraScanner({ rulesDir: directory, onDiagnostics: () => {} });
    await scanner.setup();
    const compileSeconds = (performance.now() - started) / 1000;
    const errors = scanner.diagnostics.filter((diagnostic) => diagnostic.severity === "error");
    const failedPaths = new Set(errors.map((diagnostic) => diagnostic.path));

    // The same accepted files for the yara CLI, one namespace each; files yara 4.2 refuses are
    // dropped from both sides so that both scan with the same rules.
    const accepted = sources.filter(
      (source) =>
        !failedPaths.has(source.origin) && !source.segments.some((s) => failedPaths.has(s.origin)),
    );
    const cliFiles = [];
    for (const [index, source] of accepted.entries()) {
      const path = join(work, `${label}-${index}.yar`);
      await writeFile(path, source.source);
      cliFiles.push({ namespace: `ns${index}`, path, source });
    }
    let cliRules = cliFiles;
    for (let attempt = 0; attempt < 200; attempt += 1) {
      try {
        await run(
          "yara",
          [
            "--no-warnings",
            ...cliRules.map((file) => `${file.namespace}:${file.path}`),
            "/dev/null",
          ],
          { maxBuffer: 2 ** 26 },
        );
        break;
      } catch (error) {
        const bad = /(\S+\.yar)\(\d+\)/.exec(String(error.stderr))?.[1];
        if (!bad) throw error;
        cliRules = cliRules.filter((file) => file.path !== bad);
      }
    }
    let both = scanner;
    if (cliRules.length !== cliFiles.length) {
      await scanner.close();
      both = createYaraScanner({
        rules: Object.fromEntries(cliRules.map((file) => [file.namespace, file.source.source])),
        onDiagnostics: () => {},
      });
      await both.setup();
    }

    // WebAssembly engine, worker threads (one per core), enough scans in flight to keep them busy.
    started = performance.now();
    const queue = [...targetFiles];
    let matches = 0;
    await Promise.all(
      Array.from({ length: cores * 2 }, async () => {
        for (let path = queue.shift(); path; path = queue.shift()) {
          const result = await both.scan(artifactFromFile(path));
          matches += result.metadata.yara.matchCount;
        }
      }),
    );
    const oursSeconds = (performance.now() - started) / 1000;

    // Native engine (libyara through @engine/yara-native), same rules, same concurrency.
    let nativeSeconds;
    let nativeMatches = 0;
    try {
      const native = createYaraScanner({
        rules: Object.fromEntries(cliRules.map((file) => [file.namespace, file.source.source])),
        engine: "native",
        onDiagnostics: () => {},
      });
      await native.setup();
      started = performance.now();
      const nativeQueue = [...targetFiles];
      await Promise.all(
        Array.from({ length: cores * 2 }, async () => {
          for (let path = nativeQueue.shift(); path; path = nativeQueue.shift()) {
            const result = await native.scan(artifactFromFile(path));
            nativeMatches += result.metadata.yara.matchCount;
          }
        }),
      );
      nativeSeconds = (performance.now() - started) / 1000;
      await native.close();
    } catch (error) {
      console.log(`native engine unavailable: ${error.message}`);
    }

    started = performance.now();
    const { stdout } = await run(
      "yara",
      [
        "--no-warnings",
        "-p",
        String(cores),
        ...cliRules.map((file) => `${file.namespace}:${file.path}`),
        targets,
      ],
      {
        maxBuffer: 2 ** 28,
      },
    );
    const cliSeconds = (performance.now() - started) / 1000;
    const cliMatches = stdout.split("\n").filter(Boolean).length;

    // Per-scan overhead by rule count: one small artifact, rule sets of growing size.
    for (const size of [1, 10, 100, 1000, accepted.length]) {
      if (
        size > accepted.length ||
        overheadRows.some((row) => row.label === label && row.files === size)
      )
        continue;
      const subset = createYaraScanner({
        rules: Object.fromEntries(
          cliRules.slice(0, size).map((file) => [file.namespace, file.source.source]),
        ),
        workers: 1,
        onDiagnostics: () => {},
      });
      await subset.setup();
      const small = artifactFromBytes(randomBytes(4096)); // not one repeated byte: some rules are pathological on those
      for (let index = 0; index < 3; index += 1) await subset.scan(small);
      const runs = 20;
      started = performance.now();
      for (let index = 0; index < runs; index += 1) await subset.scan(small);
      overheadRows.push({
        label,
        files: Math.min(size, cliRules.length),
        perScan: (performance.now() - started) / runs,
      });
      await subset.close();
    }
    await both.close();
    rows.push({
      label,
      read: sources.length,
      compiled: sources.length - failedPaths.size,
      both: cliRules.length,
      compileSeconds,
      oursSeconds,
      cliSeconds,
      matches,
      cliMatches,
      nativeSeconds,
      nativeMatches,
    });
  }

  console.log(
    `| rules | files read | compile with YARA-X | compile time | files scanned by all | @engine/yara wasm | @engine/yara native | yara -p ${cores} | wasm / yara | native / yara | matches (wasm / native / yara) |`,
  );
  console.log("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
  for (const row of rows) {
    const mb = total / 2 ** 20;
    const rate = (seconds) =>
      seconds === undefined ? "n/a" : `${(mb / seconds).toFixed(1)} MB/s (${seconds.toFixed(1)} s)`;
    const ratio = (seconds) =>
      seconds === undefined ? "n/a" : `${(row.cliSeconds / seconds).toFixed(2)}x`;
    console.log(
      `| ${row.label} | ${row.read} | ${row.compiled} | ${row.compileSeconds.toFixed(1)} s | ${row.both} | ${rate(row.oursSeconds)} | ${rate(row.nativeSeconds)} | ${rate(row.cliSeconds)} | ${ratio(row.oursSeconds)} | ${ratio(row.nativeSeconds)} | ${row.matches} / ${row.nativeMatches} / ${row.cliMatches} |`,
    );
  }
  console.log("\n| rules | rule files | WebAssembly per-scan time, 4 KB artifact |");
  console.log("| --- | --- | --- |");
  for (const row of overheadRows)
    console.log(`| ${row.label} | ${row.files} | ${row.perScan.toFixed(1)} ms |`);
} finally {
  await rm(work, { recursive: true, force: true });
}
