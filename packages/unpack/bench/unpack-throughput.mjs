// Benchmark: @engine/unpack with YARA against the native pipeline, side by side in one run.
//   1. Archives: a zip and a tar.gz of a copy of /usr/bin, scanned by unpack() + @engine/yara
//      (native engine, libyara) against `7zz x` into a temp directory then `yara -r -p <cores>`,
//      same rules (signature-base), same files; the detections (rule, file) compared. Also the
//      engine's own way, createUnpackingScanner(yara).scan(archive) (stops at a detection).
//   2. Bombs: each answered by createUnpackingScanner(yara) with the default limits, timed, with
//      the growth of the process's resident memory (sampled every 5 ms).
//   3. Plain files (no container): createUnpackingScanner(yara) against the bare YARA scanner.
// The rule collections are NOT part of this repository: point ENGINE_RULESETS_DIR at a folder
// holding signature-base/yara/ (default: ../shared/rulesets beside the repo). Targets: files
// copied from /usr/bin (BENCH_TARGET_MB, default 64; BENCH_TARGET_DIR to choose). Runs from
// the build: `pnpm build` in packages/unpack and packages/yara first.
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { artifactFromBytes, artifactFromFile } from "@engine/core";
import { createYaraScanner, loadRuleSources } from "@engine/yara";
import { createUnpackingScanner, unpack } from "../dist/index.js";
import { buildBombs } from "./bench-bombs.mjs";

const run = promisify(execFile);
const cores = availableParallelism();
const rulesets = resolve(
  process.env.ENGINE_RULESETS_DIR ?? join(import.meta.dirname, "../../../../shared/rulesets"),
);
const targetMegabytes = Number(process.env.BENCH_TARGET_MB ?? 64);
const sourceDirectory = process.env.BENCH_TARGET_DIR ?? "/usr/bin";
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const rulesDirectory = join(rulesets, "signature-base", "yara");
if (!existsSync(rulesDirectory)) {
  console.log(`no rule collection at ${rulesDirectory}: set ENGINE_RULESETS_DIR`);
  process.exit(0);
}

/** The rule added to signature-base on both sides, and the files planted for it. */
const plantedMarker = "ENGINE-UNPACK-BENCH-PLANTED";
const plantedFiles = 5;
const plantedRule = `rule bench_planted { strings: $m = "${plantedMarker}" condition: $m }`;

const seconds = (started) => (performance.now() - started) / 1000;
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Copies regular files of `from` (at most 16 MiB each) into `to`, up to `megabytes`. */
async function copyTargets(from, to, megabytes) {
  await mkdir(to, { recursive: true });
  let total = 0;
  let count = 0;
  for (const name of (await readdir(from)).sort()) {
    const info = await stat(join(from, name)).catch(() => undefined);
    if (!info?.isFile() || info.size === 0 || info.size > 16 * 2 ** 20) continue;
    if (total + info.size > megabytes * 2 ** 20) break;
    await copyFile(join(from, name), join(to, name));
    total += info.size;
    count += 1;
  }
  return { total, count };
}

/**
 * The signature-base rule files the yara CLI compiles (libyara, as the native engine), written
 * one namespace each; files it refuses are dropped from both sides.
 */
async function commonRules(work) {
  const { sources } = await loadRuleSources({ rulesDir: rulesDirectory });
  const files = [];
  for (const [index, source] of sources.entries()) {
    const path = join(work, `rules-${index}.yar`);
    await writeFile(path, source.source);
    files.push({ namespace: `ns${index}`, path, source: source.source });
  }
  let accepted = files;
  for (let attempt = 0; attempt < 500; attempt += 1) {
    try {
      await run(
        "yara",
        ["--no-warnings", ...accepted.map((file) => `${file.namespace}:${file.path}`), "/dev/null"],
        { maxBuffer: 2 ** 26 },
      );
      break;
    } catch (error) {
      const bad = /(\S+\.yar)\(\d+\)/.exec(String(error.stderr))?.[1];
      if (!bad) throw error;
      accepted = accepted.filter((file) => file.path !== bad);
    }
  }
  const planted = join(work, "rules-planted.yar");
  await writeFile(planted, plantedRule);
  return [...accepted, { namespace: "planted", path: planted, source: plantedRule }];
}

/**
 * The native pipeline: `7zz x` into a temp directory (a tar.gz gives its tar: extracted in
 * turn, and left there as a user's directory would have it), then `yara -r -p <cores>`.
 */
async function nativePipeline(archive, rules, work) {
  const out = await mkdtemp(join(work, "native-"));
  const started = performance.now();
  await run("7zz", ["x", "-bd", "-y", `-o${out}`, archive], { maxBuffer: 2 ** 26 });
  // A tar.gz gives the tar, extracted in turn (and scanned too, as unpack() scans it).
  if (archive.endsWith(".tar.gz"))
    await run("7zz", ["x", "-bd", "-y", `-o${out}`, join(out, "bin.tar")], { maxBuffer: 2 ** 26 });
  const { stdout } = await run(
    "yara",
    [
      "--no-warnings",
      "-r",
      "-p",
      String(cores),
      ...rules.map((file) => `${file.namespace}:${file.path}`),
      out,
    ],
    { maxBuffer: 2 ** 28 },
  );
  const elapsed = seconds(started);
  const detections = new Set(
    stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const at = line.indexOf(" ");
        return `${line.slice(0, at)} ${relative(out, line.slice(at + 1))}`;
      }),
  );
  await rm(out, { recursive: true, force: true });
  return { elapsed, detections };
}

/**
 * unpack() walking the archive, each member's bytes handed to YARA with up to `cores * 2`
 * scans in flight (a member is readable until the next event: its bytes are taken first).
 */
async function unpackPipeline(archive, yara) {
  const started = performance.now();
  const detections = new Set();
  const inFlight = new Set();
  let members = 0;
  // Every member, duplicates too: the native pipeline scans each file it extracts.
  for await (const event of unpack(artifactFromFile(archive), { skipDuplicates: false })) {
    if (event.kind === "skipped") console.log(`  skipped ${event.path}: ${event.code}`);
    if (event.kind !== "member") continue;
    members += 1;
    const path = event.member.path.split("!/").at(-1);
    const bytes = await event.member.artifact.bytes();
    const scan = yara.scan(artifactFromBytes(bytes, { filename: path })).then((result) => {
      for (const match of result.metadata.yara.matches) detections.add(`${match.rule} ${path}`);
    });
    inFlight.add(scan);
    scan.finally(() => inFlight.delete(scan));
    if (inFlight.size >= cores * 2) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return { elapsed: seconds(started), detections, members };
}

/** Peak growth of resident memory while `action` runs, in MiB, and its duration. */
async function measured(action) {
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  const started = performance.now();
  try {
    const result = await action();
    return { result, elapsed: seconds(started), grownMiB: (peak - before) / 2 ** 20 };
  } finally {
    clearInterval(sampler);
  }
}

const work = await mkdtemp(join(tmpdir(), "engine-unpack-bench-"));
try {
  const targets = join(work, "usr-bin");
  const { total, count } = await copyTargets(sourceDirectory, targets, targetMegabytes);
  // A few files a rule detects (nothing in /usr/bin matches signature-base), so that the
  // detections compared are not only the empty set.
  for (let index = 0; index < plantedFiles; index += 1)
    await writeFile(
      join(targets, `planted-${index}.txt`),
      `${"ordinary text\n".repeat(500 * index)}${plantedMarker}\n${"more text\n".repeat(100)}`,
    );
  await run("zip", ["-q", "-r", "-X", join(work, "bin.zip"), "usr-bin"], { cwd: work });
  await run("tar", ["-czf", join(work, "bin.tar.gz"), "usr-bin"], { cwd: work });
  const rules = await commonRules(work);
  console.log(
    `\ntargets: ${count} files, ${(total / 2 ** 20).toFixed(1)} MB from ${sourceDirectory}; ` +
      `rules: ${rules.length - 1} signature-base files the yara CLI accepts and one planted rule; ${cores} cores; ${process.version}; ${rounds} rounds, median\n`,
  );
  const ruleMap = Object.fromEntries(rules.map((file) => [file.namespace, file.source]));
  const yara = createYaraScanner({ rules: ruleMap, engine: "native", onDiagnostics: () => {} });
  await yara.setup();
  const unpacking = createUnpackingScanner(yara);

  // 1. Archives.
  console.log(
    "archive       | native 7zz x + yara -r | unpack() + yara | ratio | same detections | createUnpackingScanner",
  );
  for (const name of ["bin.zip", "bin.tar.gz"]) {
    const archive = join(work, name);
    const native = [];
    const ours = [];
    const engine = [];
    let last;
    let lastNative;
    for (let round = 0; round < rounds; round += 1) {
      lastNative = await nativePipeline(archive, rules, work);
      native.push(lastNative.elapsed);
      last = await unpackPipeline(archive, yara);
      ours.push(last.elapsed);
      const started = performance.now();
      await unpacking.scan(artifactFromFile(archive));
      engine.push(seconds(started));
    }
    const same =
      last.detections.size === lastNative.detections.size &&
      [...last.detections].every((detection) => lastNative.detections.has(detection));
    console.log(
      `${name.padEnd(13)} | ${median(native).toFixed(2).padStart(21)} s | ${median(ours).toFixed(2).padStart(13)} s | ${(median(native) / median(ours)).toFixed(2)}x | ${same ? "yes" : "NO"} (${last.detections.size} vs ${lastNative.detections.size}, ${last.members} members) | ${median(engine).toFixed(2)} s`,
    );
    if (!same) {
      const onlyOurs = [...last.detections].filter((d) => !lastNative.detections.has(d));
      const onlyNative = [...lastNative.detections].filter((d) => !last.detections.has(d));
      console.log(`  only ours: ${onlyOurs.slice(0, 10).join("; ")}`);
      console.log(`  only native: ${onlyNative.slice(0, 10).join("; ")}`);
    }
  }

  // 2. Bombs (the 7-Zip module compiled and a worker started first: one-time costs).
  const bombs = await buildBombs(join(work, "bombs"));
  await unpacking.scan(artifactFromBytes(await readFile(bombs[0].path), { filename: "warm.7z" }));
  console.log(
    "\nbomb                                      | answer                  | time    | RSS growth",
  );
  for (const bomb of bombs) {
    const { result, elapsed, grownMiB } = await measured(() =>
      unpacking.scan(artifactFromFile(bomb.path), { deadline: Date.now() + 30_000 }),
    );
    const answer = `${result.verdict} ${result.metadata.comments?.[0] ?? ""}`;
    console.log(
      `${bomb.label.padEnd(41)} | ${answer.padEnd(23)} | ${elapsed.toFixed(2)} s${elapsed < 1 ? "  " : " !"} | ${grownMiB.toFixed(0)} MiB${grownMiB < 64 ? "" : " !"}`,
    );
  }

  // 3. Plain files: the unpacking scanner's cost over bare YARA.
  const files = (await readdir(targets)).map((file) => join(targets, file));
  const scanAll = async (scanner) => {
    const queue = [...files];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: cores * 2 }, async () => {
        for (let path = queue.shift(); path; path = queue.shift())
          await scanner.scan(artifactFromFile(path));
      }),
    );
    return seconds(started);
  };
  const bare = [];
  const wrapped = [];
  for (let round = 0; round < rounds + 2; round += 1) {
    bare.push(await scanAll(yara));
    wrapped.push(await scanAll(unpacking));
  }
  const overhead = (median(wrapped) / median(bare) - 1) * 100;
  console.log(
    `\nplain files (${count}, no container): bare YARA ${median(bare).toFixed(2)} s, unpacking ${median(wrapped).toFixed(2)} s: overhead ${overhead.toFixed(1)}%`,
  );
  await unpacking.close();
} finally {
  await rm(work, { recursive: true, force: true });
}
