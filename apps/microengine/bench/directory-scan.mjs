// Benchmark: `microengine scan` of a directory against the native pipeline a user would run
// instead, side by side in one run, on the same clamd (cache off) and the same YARA rules:
//   native: `clamdscan --multiscan --fdpass <dir>` then `yara -r -p 2 <rules> <dir>`
//   ours:   `microengine scan --no-unpack --format json <dir>` (ENGINE_BACKENDS=clamav,yara),
//           and the same with unpacking on (reported, not compared: the native pipeline does not
//           unpack for YARA).
// The directory is a copy of /usr/share/doc (BENCH_DIRECTORY to choose another) with a few EICAR
// files planted in it and its symbolic links removed, so "the same detections" means something: each side's flagged paths are
// compared, and the run fails when they differ.
// Usage: pnpm --filter @engine/microengine bench:directory   (after pnpm build)
// Environment: BENCH_DIRECTORY (default /usr/share/doc), BENCH_ROUNDS (3; median and best are
// printed), BENCH_CONCURRENCY (scan --concurrency; default: the command's own).
import { execFile, spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startManagedClamd } from "@engine/clamav/managed";

const run = promisify(execFile);
const source = process.env.BENCH_DIRECTORY ?? "/usr/share/doc";
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
const concurrency = process.env.BENCH_CONCURRENCY;
const cli = join(import.meta.dirname, "../bin/microengine.cjs");
const rules = join(import.meta.dirname, "../../../packages/yara/rules");
const eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

const work = await mkdtemp(join(tmpdir(), "engine-directory-bench-"));
const tree = join(work, "tree");
const clamd = await startManagedClamd({ tcp: false, config: { DisableCache: true } });
const configFile = join(clamd.directory, "clamd.conf");

/** Every regular file under `directory` (what both sides should look at). */
async function countFiles(directory) {
  let count = 0;
  for (const entry of await readdir(directory, { withFileTypes: true, recursive: true }))
    if (entry.isFile()) count += 1;
  return count;
}

/** Runs a command to its end; resolves seconds and its stdout. Exit codes 0 and 1 (found) are fine. */
function timedRun(command, args, environment = {}) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, {
      env: { ...process.env, ...environment },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out = [];
    const err = [];
    child.stdout.on("data", (chunk) => out.push(chunk));
    child.stderr.on("data", (chunk) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const stdout = Buffer.concat(out).toString();
      if (code !== 0 && code !== 1)
        reject(
          new Error(`${command} exited ${code}: ${Buffer.concat(err).toString().slice(-2000)}`),
        );
      else resolve({ seconds, stdout });
    });
  });
}

/** The native pipeline: clamd's own MULTISCAN with descriptors passed, then YARA on 2 threads. */
async function native() {
  const clam = await timedRun("clamdscan", [
    `--config-file=${configFile}`,
    "--multiscan",
    "--fdpass",
    "--no-summary",
    "--infected",
    tree,
  ]);
  const yara = await timedRun("yara", ["-r", "-p", "2", join(rules, "eicar.yar"), tree]);
  const flagged = new Set();
  for (const line of clam.stdout.split("\n")) {
    const found = /^(.*): .+ FOUND$/.exec(line);
    if (found) flagged.add(found[1]);
  }
  for (const line of yara.stdout.split("\n")) {
    const match = /^\S+ (.+)$/.exec(line);
    if (match) flagged.add(match[1]);
  }
  return { seconds: clam.seconds + yara.seconds, clamSeconds: clam.seconds, flagged };
}

/** `microengine scan` on the same clamd and rules. */
async function ours(unpack) {
  const args = [cli, "scan", "--format", "json", "--no-progress"];
  if (!unpack) args.push("--no-unpack");
  if (concurrency) args.push("--concurrency", concurrency);
  // Run as a program, as users run it: its first line gives node its flags.
  const [command, ...rest] = args;
  const { seconds, stdout } = await timedRun(command, [...rest, tree], {
    ENGINE_BACKENDS: "clamav,yara",
    CLAMD_SOCKET: clamd.socketPath,
    CACHE_TTL_SECONDS: "0",
    LOG_LEVEL: "error",
  });
  const flagged = new Set();
  let files = 0;
  let unknown = 0;
  for (const line of stdout.split("\n")) {
    if (line === "") continue;
    const entry = JSON.parse(line);
    files += 1;
    if (entry.verdict === "malicious" || entry.verdict === "suspicious") flagged.add(entry.path);
    if (entry.verdict === "unknown") unknown += 1;
  }
  return { seconds, flagged, files, unknown };
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const best = (values) => Math.min(...values);
const sameSet = (a, b) => a.size === b.size && [...a].every((path) => b.has(path));

try {
  await cp(source, tree, { recursive: true, verbatimSymlinks: true });
  // Symbolic links go: the two sides follow them differently (clamd not at all by default, yara
  // and scan do), and /usr/share/doc's dangling ones would be errors on one side only.
  await run("find", [tree, "-type", "l", "-delete"]);
  await mkdir(join(tree, "planted", "deeper"), { recursive: true });
  for (const path of ["planted/eicar.com", "planted/deeper/eicar.txt", "eicar-at-top.bin"])
    await writeFile(join(tree, path), eicar);
  const files = await countFiles(tree);
  const { stdout: size } = await run("du", ["-sh", tree]);
  console.log(`# ${files} files, ${size.split("\t")[0]} (a copy of ${source}), ${rounds} rounds\n`);

  const times = { native: [], nativeClam: [], ours: [], unpacking: [] };
  let detections;
  for (let round = 0; round < rounds; round += 1) {
    // Interleaved, one after the other, so a slow moment of the machine hits both sides.
    const a = await native();
    const b = await ours(false);
    const c = await ours(true);
    times.native.push(a.seconds);
    times.nativeClam.push(a.clamSeconds);
    times.ours.push(b.seconds);
    times.unpacking.push(c.seconds);
    if (!sameSet(a.flagged, b.flagged))
      throw new Error(
        `different detections: native ${JSON.stringify([...a.flagged])}, ours ${JSON.stringify([...b.flagged])}`,
      );
    detections = { native: a.flagged.size, ours: b.flagged.size, unpacking: c.flagged.size };
    console.log(
      `round ${round + 1}: native ${a.seconds.toFixed(2)} s (clamdscan ${a.clamSeconds.toFixed(2)}), ` +
        `scan --no-unpack ${b.seconds.toFixed(2)} s (${b.files} files, ${b.unknown} unknown), ` +
        `scan ${c.seconds.toFixed(2)} s (${c.files} files, ${c.unknown} unknown)`,
    );
  }
  const ratio = (value) => (median(times.native) / value).toFixed(2);
  console.log("\n| pipeline | median | best | ratio to native (median) | detections |");
  console.log("|---|---|---|---|---|");
  console.log(
    `| clamdscan --multiscan --fdpass + yara -r -p 2 | ${median(times.native).toFixed(2)} s | ${best(times.native).toFixed(2)} s | 1.00x | ${detections.native} |`,
  );
  console.log(
    `| microengine scan --no-unpack | ${median(times.ours).toFixed(2)} s | ${best(times.ours).toFixed(2)} s | ${ratio(median(times.ours))}x | ${detections.ours} |`,
  );
  console.log(
    `| microengine scan (unpacking on) | ${median(times.unpacking).toFixed(2)} s | ${best(times.unpacking).toFixed(2)} s | ${ratio(median(times.unpacking))}x | ${detections.unpacking} |`,
  );
  console.log(`\n(clamdscan alone, median: ${median(times.nativeClam).toFixed(2)} s)`);
} finally {
  await clamd.stop();
  await rm(work, { recursive: true, force: true });
}
