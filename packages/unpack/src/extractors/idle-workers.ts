import type { Worker } from "node:worker_threads";

interface IdleWorker {
  worker: Worker;
  timer: NodeJS.Timeout;
  forget: () => void;
}

/**
 * Worker threads kept between jobs (starting one costs ~40-50 ms, and its JavaScript runs
 * cold): at most `capacity`, each terminated after `idleMs` idle, none keeping the process
 * alive while kept. A kept worker that fails or exits is forgotten.
 */
export class IdleWorkers {
  readonly #entries: IdleWorker[] = [];

  constructor(
    private readonly capacity: number,
    private readonly idleMs: number,
  ) {}

  /** Workers kept now. */
  get size(): number {
    return this.#entries.length;
  }

  /** A kept worker, no longer kept (still unreferenced: the caller refs it if it must), or none. */
  take(): Worker | undefined {
    const idle = this.#entries.pop();
    idle?.forget();
    return idle?.worker;
  }

  /** Keeps `worker` (unreferenced) for a later job; terminates it when `capacity` are kept. */
  keep(worker: Worker): void {
    if (this.#entries.length >= this.capacity) {
      void worker.terminate();
      return;
    }
    worker.unref();
    const entries = this.#entries;
    const entry: IdleWorker = {
      worker,
      timer: setTimeout(() => {
        entry.forget();
        void worker.terminate();
      }, this.idleMs),
      forget: () => {
        clearTimeout(entry.timer);
        worker.off("error", entry.forget);
        worker.off("exit", entry.forget);
        const index = entries.indexOf(entry);
        if (index >= 0) entries.splice(index, 1);
      },
    };
    entry.timer.unref();
    worker.once("error", entry.forget);
    worker.once("exit", entry.forget);
    entries.push(entry);
  }
}
