// Benchmark: Multi(ClamAV, YARA) against the slowest of its backends alone, on the same files,
// in one run (rounds interleaved, median kept). Goal: multi throughput >= 0.95x the slowest
// backend; added latency per artifact under 1 ms.
// Usage: pnpm --filter @engine/multi bench   (after pnpm build; needs clamd installed)
// Environment: BENCH_FILES (300), BENCH_FILE_KB (10), BENCH_ROUNDS (3).
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClamavScanner } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { artifactFromBytes, artifactFromFile, defineScanner } from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import { createYaraScanner } from "@engine/yara";

const fileCount = Number(process.env.BENCH_FILES ?? 300);
const fileBytes = Number(process.env.BENCH_FILE_KB ?? 10) * 1024;
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const work = await mkdtemp(join(tmpdir(), "engine-multi-bench-"));
const clamd = await startManagedClamd({ config: { DisableCache: true } });
try {
  const files = [];
  for (let index = 0; index < fileCount; index += 1) {
    const path = join(work, `file-${index}.bin`);
    await writeFile(path, randomBytes(fileBytes));
    files.push(path);
  }
  const clamav = createClamavScanner(clamd.clientOptions());
  const yara = createYaraScanner({ onDiagnostics: () => {} });
  const multi = createMultiScanner([clamav, yara]);
  await multi.setup();

  async function measure(scanner, concurrency) {
    const queue = [...files];
    const latencies = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        for (let path = queue.shift(); path; path = queue.shift()) {
          const begin = performance.now();
          const result = await scanner.scan(artifactFromFile(path));
          latencies.push(performance.now() - begin);
          if (result.verdict !== "benign")
            throw new Error(`${scanner.name}: ${JSON.stringify(result)}`);
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    return {
      rate: files.length / seconds,
      latency: latencies.reduce((sum, value) => sum + value, 0) / latencies.length,
    };
  }

  const subjects = [clamav, yara, multi];
  const rows = [];
  for (const concurrency of [1, 4]) {
    for (const subject of subjects) await measure(subject, concurrency); // warm-up
    const samples = new Map(subjects.map((subject) => [subject.name, []]));
    for (let round = 0; round < rounds; round += 1) {
      for (let index = 0; index < subjects.length; index += 1) {
        const subject = subjects[(index + round) % subjects.length];
        samples.get(subject.name).push(await measure(subject, concurrency));
      }
    }
    const median = (values, key) =>
      [...values].map((value) => value[key]).sort((left, right) => left - right)[
        Math.floor(values.length / 2)
      ];
    const summary = Object.fromEntries(
      subjects.map((subject) => [
        subject.name,
        {
          rate: median(samples.get(subject.name), "rate"),
          latency: median(samples.get(subject.name), "latency"),
        },
      ]),
    );
    const slowest = summary.clamav.rate < summary.yara.rate ? "clamav" : "yara";
    rows.push({
      concurrency,
      clamav: summary.clamav,
      yara: summary.yara,
      multi: summary.multi,
      slowest,
      ratio: summary.multi.rate / summary[slowest].rate,
      addedLatency: summary.multi.latency - summary[slowest].latency,
    });
  }
  await multi.close();

  // The multi's own cost, without CPU-hungry backends: two instant fake backends.
  const metadata = {
    malware_family: "",
    scanner: { vendor_version: "1", signatures_version: "1" },
  };
  const instant = (name) =>
    defineScanner({ name, scan: async () => ({ verdict: "benign", confidence: 1, metadata }) });
  const single = instant("alone");
  const pair = createMultiScanner([instant("first"), instant("second")]);
  const small = artifactFromBytes("x");
  const perScan = async (scanner) => {
    for (let index = 0; index < 2000; index += 1) await scanner.scan(small);
    const started = performance.now();
    for (let index = 0; index < 20000; index += 1) await scanner.scan(small);
    return ((performance.now() - started) / 20000) * 1000;
  };
  const alone = await perScan(single);
  const combined = await perScan(pair);
  console.log(
    `\n${fileCount} files of ${fileBytes / 1024} KB, clamd cache off, YARA bundled rules, median of ${rounds} interleaved rounds, ${process.version}\n`,
  );
  console.log(
    "| concurrency | clamav alone | yara alone | multi(clamav, yara) | multi / slowest | added latency per artifact |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const row of rows) {
    const cell = (entry) => `${entry.rate.toFixed(0)} files/s (${entry.latency.toFixed(2)} ms)`;
    console.log(
      `| ${row.concurrency} | ${cell(row.clamav)} | ${cell(row.yara)} | ${cell(row.multi)} | ${row.ratio.toFixed(2)}x (slowest: ${row.slowest}) | ${row.addedLatency.toFixed(2)} ms |`,
    );
  }
  console.log(
    `\nThe multi's own cost (two instant backends vs one): ${combined.toFixed(1)} µs vs ${alone.toFixed(1)} µs per scan, +${(combined - alone).toFixed(1)} µs.`,
  );
} finally {
  await clamd[Symbol.asyncDispose]();
  await rm(work, { recursive: true, force: true });
}
