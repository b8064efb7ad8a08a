import { open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromFile } from "@engine/core";
import { expect, it } from "vitest";
import { ClamdClient } from "../src/index.js";
import { startManagedClamd } from "../src/managed.js";

const gigabyte = 1024 * 1024 * 1024;

it("streams a 1 GB file from disk to clamd with the process RSS growing less than 64 MB", {
  timeout: 300_000,
}, async () => {
  await using clamd = await startManagedClamd({ config: { StreamMaxLength: "1100M" } });
  const path = join(tmpdir(), `engine-clamav-1gb-${process.pid}.bin`);
  const file = await open(path, "w");
  try {
    // Real data, not a sparse hole: 1 MiB of varied bytes written 1024 times.
    const block = Buffer.alloc(1024 * 1024);
    for (let index = 0; index < block.length; index += 1) block[index] = (index * 31 + 7) & 0xff;
    for (let written = 0; written < gigabyte; written += block.length) await file.write(block);
    await file.close();

    const client = new ClamdClient({
      ...clamd.clientOptions("tcp"),
      maxStreamBytes: 1100 * 1024 * 1024,
    });
    await client.ping();
    const baseline = process.memoryUsage.rss();
    let peak = baseline;
    const sampler = setInterval(() => {
      peak = Math.max(peak, process.memoryUsage.rss());
    }, 20);
    const started = Date.now();
    const outcome = await client.scan(artifactFromFile(path));
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage.rss());
    const growth = peak - baseline;
    console.log(
      `1 GB streamed in ${Date.now() - started} ms; RSS baseline ${(baseline / 2 ** 20).toFixed(1)} MB, growth ${(growth / 2 ** 20).toFixed(1)} MB`,
    );
    expect(outcome.mode).toBe("instream");
    expect(outcome.bytesSent).toBe(gigabyte);
    // Past clamd's MaxFileSize (100M): with AlertExceedsMax the answer says so instead of "OK".
    expect(outcome.reply).toMatchObject({
      kind: "found",
      signature: "Heuristics.Limits.Exceeded.MaxFileSize",
      limitsExceeded: true,
    });
    expect(growth).toBeLessThan(64 * 1024 * 1024);
    await client.close();
  } finally {
    await file.close().catch(() => {});
    await rm(path, { force: true });
  }
});
