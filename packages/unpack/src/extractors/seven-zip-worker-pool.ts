import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import { IdleWorkers } from "./idle-workers.js";
import type { CompiledSevenZip, SevenZipWorkerData, WorkerEvent } from "./seven-zip-protocol.js";

/** The worker script: next to this module in `dist/`; tests running from `src/` use the build. */
const workerUrl = new URL(
  import.meta.url.endsWith(".ts") ? "../../dist/seven-zip-worker.js" : "./seven-zip-worker.js",
  import.meta.url,
);

/** JavaScript heap of one worker, in MiB (the listing and the chunks in flight; 7-Zip's memory is apart). */
export const workerHeapMegabytes = 256;
/** Workers kept between containers at most (a container inside a container uses a second). */
const idleWorkersKept = 2;
/** A worker idle this long is terminated, in ms. */
const idleWorkerMs = 30_000;
/** A worker whose 7-Zip memory grew past this is not kept (it is freed only by a collection), in bytes. */
const keptHeapBytes = 64 * 1024 * 1024;

let compiled: Promise<CompiledSevenZip> | undefined;

/** 7-Zip's WebAssembly, compiled once per process (off the event loop) and given to each worker. */
export function sevenZipModule(): Promise<CompiledSevenZip> {
  compiled ??= (async () => {
    // @types/node declares the WebAssembly types but not the global value.
    const { WebAssembly: wasm } = globalThis as unknown as {
      WebAssembly: { compile(bytes: Uint8Array): Promise<CompiledSevenZip> };
    };
    const path = createRequire(import.meta.url).resolve("7z-wasm/7zz.wasm");
    return wasm.compile(await readFile(path));
  })();
  compiled.catch(() => {
    compiled = undefined;
  });
  return compiled;
}

const idleWorkers = new IdleWorkers(idleWorkersKept, idleWorkerMs);

/**
 * A worker for one container: one kept from an earlier container (starting a worker costs
 * ~40 ms, and its JavaScript runs cold), else a new one. 7-Zip itself is a fresh instance for
 * every container either way.
 */
export function takeWorker(module: CompiledSevenZip): Worker {
  const idle = idleWorkers.take();
  if (idle) return idle;
  const workerData: SevenZipWorkerData = { module };
  const worker = new Worker(workerUrl, {
    workerData,
    resourceLimits: { maxOldGenerationSizeMb: workerHeapMegabytes, maxYoungGenerationSizeMb: 32 },
  });
  worker.unref();
  // Each user listens for errors too; this one keeps an error nobody awaits from being thrown.
  worker.on("error", () => {});
  return worker;
}

/**
 * A worker whose job ended cleanly: kept for the next container once it says it is idle
 * (`heapBytes` when it already did), unless 7-Zip's memory grew large in it or enough are
 * kept; terminated after a while idle.
 */
export function releaseWorker(worker: Worker, heapBytes?: number): void {
  const settle = (grownTo: number) => {
    if (grownTo > keptHeapBytes) void worker.terminate();
    else idleWorkers.keep(worker);
  };
  if (heapBytes !== undefined) {
    settle(heapBytes);
    return;
  }
  const onMessage = (event: WorkerEvent) => {
    if (event.type !== "idle") return;
    stopListening();
    settle(event.heapBytes);
  };
  const onGone = () => stopListening();
  const stopListening = () => {
    worker.off("message", onMessage);
    worker.off("error", onGone);
    worker.off("exit", onGone);
  };
  worker.on("message", onMessage);
  worker.once("error", onGone);
  worker.once("exit", onGone);
}

/** Workers kept now (for tests and metrics). */
export function idleSevenZipWorkers(): number {
  return idleWorkers.size;
}
