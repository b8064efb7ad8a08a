import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WalkFailedError, walkPaths } from "../../../src/commands/scan/walk-thread.js";

const files = 2000;
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "engine-walk-thread-"));
  await mkdir(join(root, "d"));
  await Promise.all(
    Array.from({ length: files }, (_, index) =>
      writeFile(join(root, "d", `f${String(index).padStart(5, "0")}`), "x"),
    ),
  );
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Entries the worker posted, counted as they are posted (not as they are read). */
function countPosted(worker: Worker): { entries: number } {
  const posted = { entries: 0 };
  worker.on("message", (message: { type: string; entries?: unknown[] }) => {
    posted.entries += message.entries?.length ?? 0;
  });
  return posted;
}

function exited(worker: Worker): Promise<number> {
  return new Promise((resolve) => worker.once("exit", resolve));
}

describe("walkPaths (the walk's worker thread)", () => {
  it("walks every file, in name order", async () => {
    const paths: string[] = [];
    for await (const entry of walkPaths([root])) if (entry.kind === "file") paths.push(entry.path);
    expect(paths).toHaveLength(files);
    expect(paths).toEqual([...paths].sort());
  });

  it("goes no further ahead of a reader that stops reading than three batches", async () => {
    let worker: Worker | undefined;
    let posted = { entries: 0 };
    const walk = walkPaths([root], {
      onWorker: (started) => {
        worker = started;
        posted = countPosted(started);
      },
    });
    await walk.next();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Two batches of credit ahead, plus the one being read: at most 3 x 256 entries.
    expect(posted.entries).toBeGreaterThan(0);
    expect(posted.entries).toBeLessThanOrEqual(3 * 256);
    const exit = exited(worker as Worker);
    await walk.return(undefined);
    await exit; // a reader that stops ends the worker
  });

  it("fails, never ends quietly, when its worker stops before the walk is done", async () => {
    const walk = async () => {
      const seen: string[] = [];
      for await (const entry of walkPaths([root], {
        onWorker: (worker) => void worker.terminate(),
      }))
        seen.push(entry.path);
      return seen;
    };
    await expect(walk()).rejects.toThrow(WalkFailedError);
    await expect(walk()).rejects.toThrow(/were not walked nor scanned/);
  });

  it("stops its worker once the signal is aborted", async () => {
    const controller = new AbortController();
    let exit: Promise<number> | undefined;
    let count = 0;
    for await (const entry of walkPaths([root], {
      signal: controller.signal,
      onWorker: (worker) => {
        exit = exited(worker);
      },
    })) {
      if (entry.kind === "file") count += 1;
      if (count === 10) controller.abort();
    }
    expect(count).toBe(10);
    await exit;
  });
});
