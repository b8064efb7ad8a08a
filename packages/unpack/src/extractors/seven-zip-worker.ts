// Worker thread: runs 7-Zip (7z-wasm) on one container at a time, a fresh instance for each
// (and for each run after one that stopped), and streams what it extracts to the extractor,
// entry by entry. Nothing is written anywhere: 7-Zip's output files live in its in-memory file
// system as empty nodes, their bytes are sent on as 7-Zip writes them (at most a few chunks
// ahead of the reader), and a write past a bound stops 7-Zip there. The extractor terminates
// this thread at the deadline, and keeps it for the next container once a job ended cleanly.
import { closeSync, openSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { parentPort, workerData } from "node:worker_threads";
import type { SevenZipModule, SevenZipModuleFactory } from "7z-wasm";
import { LzipCheck } from "./lzip-to-lzma.js";
import {
  outcomeOfError,
  outcomeOfOpenFailure,
  parseListing,
  splitErrorLine,
} from "./seven-zip-listing.js";
import {
  allowanceOffset,
  type CompiledSevenZip,
  Control,
  chunkLimitBytes,
  chunkWindow,
  type ExtractorMessage,
  type Listing,
  type Outcome,
  type SevenZipJob,
  type SevenZipWorkerData,
  type WorkerEvent,
} from "./seven-zip-protocol.js";

const port = parentPort;
if (!port) throw new Error("@engine/unpack: seven-zip-worker.js must run in a worker thread");
const { module: compiledModule } = workerData as SevenZipWorkerData;

/** Messages from the extractor not taken yet, and who waits for the next one. */
const inbox: ExtractorMessage[] = [];
let wake: (() => void) | undefined;
port.on("message", (received: ExtractorMessage) => {
  inbox.push(received);
  wake?.();
});

/** The next message of `type` from the extractor (others before it are dropped). */
async function message<T extends ExtractorMessage["type"]>(
  type: T,
): Promise<Extract<ExtractorMessage, { type: T }>> {
  for (;;) {
    const received = inbox.shift();
    if (received?.type === type) return received as Extract<ExtractorMessage, { type: T }>;
    if (!received) await new Promise<void>((resolve) => (wake = resolve));
  }
}

/** The job being run (one container): set by `startJob`, read by everything below. */
let input: SevenZipJob;
let control: Int32Array;
let allowance: BigInt64Array;
let archivePath: string;
/** Bytes of the file 7-Zip sees. */
let inputSize: number;
/** The largest WebAssembly memory an instance of this job grew to, in bytes. */
let heapPeak = 0;
const SevenZip = createRequire(import.meta.url)("7z-wasm") as SevenZipModuleFactory;
// @types/node declares the WebAssembly types but not the global value.
const { WebAssembly: wasm } = globalThis as unknown as {
  WebAssembly: {
    Instance: new (module: CompiledSevenZip, imports: object) => { exports: object };
  };
};

const outputDirectory = "/out";
/** Emscripten's errno for "operation not permitted". */
const notPermitted = 63;

function post(event: WorkerEvent): void {
  if (event.type === "chunk") port?.postMessage(event, [event.bytes.buffer as ArrayBuffer]);
  else port?.postMessage(event);
}

/** Thrown from a write to stop 7-Zip at once (it unwinds 7-Zip; that instance is not used again). */
class StopExtraction extends Error {
  constructor(readonly outcome: Outcome) {
    super(outcome.reason);
  }
}

/** Emscripten's FS as far as this worker uses it (the typings of 7z-wasm lack some of it). */
interface EmscriptenFileSystem {
  // biome-ignore lint/suspicious/noExplicitAny: Emscripten's FS objects are untyped
  [name: string]: any;
}

interface FileStream {
  path: string;
  node: { mode: number };
}

/** Reads the container by offset: its bytes, or its file (opened per job). */
interface ContainerReader {
  read(target: Uint8Array, from: number): number;
  close(): void;
}
let container: ContainerReader | undefined;

function openContainer(source: SevenZipJob["container"]): ContainerReader {
  if ("bytes" in source) {
    const { bytes } = source;
    return {
      read: (target, from) => {
        const part = bytes.subarray(from, from + target.length);
        target.set(part);
        return part.length;
      },
      close: () => {},
    };
  }
  const descriptor = openSync(source.path, "r");
  return {
    read: (target, from) => readSync(descriptor, target, 0, target.length, from),
    close: () => closeSync(descriptor),
  };
}

function startJob(job: SevenZipJob): void {
  input = job;
  control = new Int32Array(job.control, 0, 4);
  allowance = new BigInt64Array(job.control, allowanceOffset, 1);
  archivePath = `/in/${job.archiveName}`;
  inputSize = job.segments.reduce(
    (total, segment) => total + ("bytes" in segment ? segment.bytes.length : segment.length),
    0,
  );
  heapPeak = 0;
  container = undefined;
  container = openContainer(job.container);
}

/** Reads the file 7-Zip sees (the segments one after another) at `position` into `target`. */
function readInput(target: Uint8Array, position: number): number {
  let filled = 0;
  let segmentStart = 0;
  for (const segment of input.segments) {
    const length = "bytes" in segment ? segment.bytes.length : segment.length;
    const at = position + filled;
    if (filled < target.length && at < segmentStart + length && at >= segmentStart) {
      const count = Math.min(target.length - filled, segmentStart + length - at);
      const part = target.subarray(filled, filled + count);
      const offset = at - segmentStart;
      let read = count;
      if ("bytes" in segment) part.set(segment.bytes.subarray(offset, offset + count));
      else read = (container as ContainerReader).read(part, segment.from + offset);
      filled += read;
      if (read < count) break;
    }
    segmentStart += length;
  }
  return filled;
}

/** What a run of 7-Zip printed and whether its memory hit the bound. */
interface Instance {
  module: SevenZipModule;
  fs: EmscriptenFileSystem;
  stdout: string[];
  readonly heapRefused: boolean;
  /** Bytes of its WebAssembly memory now. */
  heapBytes(): number;
}

/** A fresh 7-Zip (a few ms: the module is compiled), its memory bounded, `onError` for each standard error line. */
async function newInstance(onError: (line: string) => void): Promise<Instance> {
  const state = {
    stdout: [] as string[],
    heapRefused: false,
    memory: undefined as { buffer: ArrayBuffer } | undefined,
  };
  const options = {
    print: (line: string) => state.stdout.push(line),
    printErr: onError,
    stdin: () => null,
    instantiateWasm(
      imports: { env: Record<string, (...values: number[]) => number> },
      receive: (instance: { exports: object }, module: CompiledSevenZip) => void,
    ) {
      const { env } = imports;
      const grow = env.emscripten_resize_heap as (requested: number) => number;
      // The heap grows only to the bound: past it an allocation fails and 7-Zip stops.
      env.emscripten_resize_heap = (requested: number) => {
        if (requested >>> 0 > input.heapLimitBytes) {
          state.heapRefused = true;
          return 0;
        }
        return grow(requested);
      };
      env.emscripten_get_heap_max = () => input.heapLimitBytes;
      const instance = new wasm.Instance(compiledModule, imports);
      state.memory = (instance.exports as { memory?: { buffer: ArrayBuffer } }).memory;
      receive(instance, compiledModule);
      return instance.exports;
    },
  };
  const module = await SevenZip(options as unknown as Parameters<SevenZipModuleFactory>[0]);
  const fs = module.FS as unknown as EmscriptenFileSystem;
  fs.mkdir("/in");
  fs.mkdir(outputDirectory);
  // The container: a node whose reads come from the segments (never copied whole).
  fs.writeFile(archivePath, new Uint8Array(0));
  const node = fs.lookupPath(archivePath).node;
  node.usedBytes = inputSize;
  const refuse = () => {
    throw new fs.ErrnoError(notPermitted);
  };
  node.stream_ops = {
    ...node.stream_ops,
    read: (_stream: unknown, heap: Int8Array, offset: number, length: number, position: number) =>
      readInput(
        new Uint8Array(
          heap.buffer,
          heap.byteOffset + offset,
          Math.max(0, Math.min(length, inputSize - position)),
        ),
        position,
      ),
    write: refuse,
    mmap: refuse,
  };
  node.node_ops = { ...node.node_ops, setattr: refuse };
  return {
    module,
    fs,
    stdout: state.stdout,
    get heapRefused() {
      return state.heapRefused;
    },
    heapBytes: () => state.memory?.buffer.byteLength ?? 0,
  };
}

/** The name 7-Zip gives an entry's output, compared loosely: no control characters, no `..`. */
function comparable(name: string): string {
  return (
    name
      // biome-ignore lint/suspicious/noControlCharactersInRegex: 7-Zip does not print them
      .replace(/[\u0000-\u001f\u007f]/g, "")
      .split("/")
      .filter((part) => part && part !== "." && part !== "..")
      .join("/")
  );
}

/** The entry 7-Zip is writing: a listing index, or none (an output nobody asked for, dropped). */
interface Current {
  entry: number | undefined;
  stream: FileStream;
  bytes: number;
  /** Set when a write stopped 7-Zip at this entry: every later write throws again. */
  stopped?: Outcome | undefined;
  /** An error 7-Zip reported for it. */
  outcome?: Outcome | undefined;
}

/** One extraction: the entries 7-Zip writes, matched to the listing, streamed with back-pressure. */
class Output {
  current: Current | undefined;
  /** The entry closed last, its end not posted yet: 7-Zip reports an entry's error after closing it. */
  closed: { entry: number; bytes: number; outcome?: Outcome | undefined } | undefined;
  readonly begun = new Set<number>();
  readonly failed = new Set<number>();
  /** Chosen entries by their name as compared, in order. */
  readonly #byName = new Map<string, number[]>();
  /** Names of the entries not chosen (7-Zip was told to leave them). */
  readonly #unchosen = new Set<string>();
  /** Chosen entries before this one are begun or failed. */
  #cursor = 0;
  /** Bytes sent, all entries. */
  #total = 0;
  /** Chunks sent. */
  #sent = 0;
  trailing = false;
  /** Set when the bytes of all entries reached the allowance: nothing more is extracted. */
  exhausted: Outcome | undefined;
  readonly unmatched: string[] = [];
  /** 7-Zip could not allocate memory for what is left. */
  memory: Outcome | undefined;
  /** Events about other entries, posted once the entry being written ends. */
  readonly #deferred: WorkerEvent[] = [];
  readonly #check = input.lzipMembers ? new LzipCheck(input.lzipMembers) : undefined;

  constructor(
    private readonly listing: Listing,
    readonly chosen: readonly number[],
  ) {
    const chosenSet = new Set(chosen);
    for (const entry of chosen) {
      const name = this.#path(entry);
      const named = this.#byName.get(name);
      if (named) named.push(entry);
      else this.#byName.set(name, [entry]);
    }
    for (const entry of listing.entries)
      if (!chosenSet.has(entry.index)) this.#unchosen.add(comparable(entry.path));
  }

  #path(entry: number): string {
    return comparable(this.listing.entries[entry]?.path ?? "");
  }

  #done(entry: number): boolean {
    return this.begun.has(entry) || this.failed.has(entry);
  }

  /** Chosen entries neither begun nor failed, in order. */
  left(): number[] {
    return this.chosen.filter((entry) => !this.#done(entry));
  }

  /** The next chosen entry named `wanted` that is neither begun nor failed. */
  #named(wanted: string): number | undefined {
    const entries = this.#byName.get(wanted);
    while (entries?.length && this.#done(entries[0] as number)) entries.shift();
    return entries?.[0];
  }

  /** The first chosen entry neither begun nor failed. */
  #next(): number | undefined {
    while (this.#cursor < this.chosen.length && this.#done(this.chosen[this.#cursor] as number))
      this.#cursor += 1;
    return this.chosen[this.#cursor];
  }

  /**
   * The listing index of an output 7-Zip opened: the next chosen entry of that name; none
   * for an entry of that name that was not chosen (7-Zip was told to leave it); else the next
   * chosen entry (7-Zip writes entries in their order).
   */
  #match(name: string): number | undefined {
    if (input.singleStream) return 0;
    const wanted = comparable(name);
    const named = this.#named(wanted);
    if (named !== undefined) return named;
    return this.#unchosen.has(wanted) ? undefined : this.#next();
  }

  /** 7-Zip opened an output file: the next entry begins. */
  begin(stream: FileStream): void {
    this.flush();
    if (this.exhausted) throw new StopExtraction(this.exhausted);
    const name = stream.path.slice(outputDirectory.length + 1);
    const entry = this.#match(name);
    this.current = { entry, stream, bytes: 0 };
    if (entry === undefined) return;
    this.begun.add(entry);
    post({ type: "begin", entry, name: this.listing.entries[entry]?.path ?? name });
  }

  owns(stream: FileStream): boolean {
    return this.current?.stream === stream;
  }

  /** Bytes 7-Zip writes for the current entry: sent on, up to the bounds. */
  write(heap: Int8Array, offset: number, length: number): number {
    const current = this.current;
    if (!current || current.entry === undefined) return length;
    if (current.stopped) throw new StopExtraction(current.stopped);
    this.#throwIfUnwanted(current);
    const memberRoom = input.maxMemberBytes - current.bytes;
    const totalRoom = Number(Atomics.load(allowance, 0)) - this.#total;
    const take = Math.max(0, Math.min(length, memberRoom, totalRoom));
    const bytes = new Uint8Array(heap.buffer, heap.byteOffset + offset, take);
    const mismatch = this.#check?.update(bytes);
    for (let at = 0; at < take; at += chunkLimitBytes)
      this.#send(bytes.slice(at, Math.min(take, at + chunkLimitBytes)), current);
    current.bytes += take;
    this.#total += take;
    if (mismatch) throw this.#stop(current, { code: "CORRUPT", reason: mismatch });
    if (take === length) return length;
    if (memberRoom <= totalRoom)
      throw this.#stop(current, {
        code: "LIMITS",
        reason: `a member decodes to more than maxMemberBytes (${input.maxMemberBytes} bytes)`,
        limit: "maxMemberBytes",
      });
    this.exhausted = {
      code: "LIMITS",
      reason: "the members decode to more than maxTotalBytes",
      limit: "maxTotalBytes",
    };
    throw this.#stop(current, this.exhausted);
  }

  #throwIfUnwanted(current: Current): void {
    if (Atomics.load(control, Control.stopEntry) === current.entry)
      throw this.#stop(current, { code: "LIMITS", reason: "its reader stopped reading it" });
  }

  /** Sends a chunk, then waits while the reader is more than {@link chunkWindow} chunks behind. */
  #send(bytes: Uint8Array, current: Current): void {
    post({ type: "chunk", bytes });
    this.#sent += 1;
    for (;;) {
      const consumed = Atomics.load(control, Control.consumed);
      if (this.#sent - consumed <= chunkWindow) return;
      this.#throwIfUnwanted(current);
      Atomics.wait(control, Control.consumed, consumed, 1_000);
    }
  }

  #stop(current: Current, outcome: Outcome): StopExtraction {
    current.stopped = outcome;
    return new StopExtraction(outcome);
  }

  /** 7-Zip closed an output file (or stopped while writing it). */
  close(stream: FileStream): void {
    const current = this.current;
    if (current?.stream !== stream) return;
    this.current = undefined;
    if (current.entry === undefined) return;
    const mismatch = current.stopped || current.outcome ? undefined : this.#check?.finish();
    const outcome =
      current.stopped ??
      current.outcome ??
      (mismatch ? ({ code: "CORRUPT", reason: mismatch } as const) : undefined);
    this.closed = { entry: current.entry, bytes: current.bytes, outcome };
  }

  /** Posts the end of the entry closed last, then what was said about others meanwhile. */
  flush(): void {
    const closed = this.closed;
    this.closed = undefined;
    if (closed)
      post({ type: "end", entry: closed.entry, bytes: closed.bytes, outcome: closed.outcome });
    for (const event of this.#deferred.splice(0)) post(event);
  }

  /** A line of 7-Zip's standard error: about the entry closed last, another one, or the archive. */
  error(line: string): void {
    const split = splitErrorLine(line);
    if (!split) {
      if (line.trim()) this.unmatched.push(line.trim());
      return;
    }
    const outcome = outcomeOfError(split.message);
    if (outcome === "ignored") return;
    if (outcome === "trailing") {
      this.trailing = true;
      return;
    }
    const wanted = comparable(split.name);
    const recent = this.closed ?? this.current;
    if (
      recent?.entry !== undefined &&
      (input.singleStream || this.#path(recent.entry) === wanted)
    ) {
      recent.outcome ??= outcome;
      return;
    }
    const entry = this.#named(wanted);
    if (entry !== undefined) {
      this.failed.add(entry);
      this.#deferred.push({ type: "failed", entry, outcome });
      if (!this.current) this.flush();
      return;
    }
    if (this.#unchosen.has(wanted)) return;
    // Out of memory names no entry: it ends the entries left (see `extract`).
    if (outcome.code === "LIMITS") this.memory ??= outcome;
    else this.unmatched.push(`${split.message}${split.name ? ` : ${split.name}` : ""}`);
  }
}

/** Runs 7-Zip's command line on a fresh instance; what it printed, and how it ended. */
async function run(
  args: string[],
  onError: (line: string) => void,
  prepare?: (instance: Instance) => void,
): Promise<{ code: number | undefined; thrown: unknown; instance: Instance }> {
  const instance = await newInstance(onError);
  prepare?.(instance);
  try {
    const code = instance.module.callMain(args) as unknown as number | undefined;
    return { code, thrown: undefined, instance };
  } catch (thrown) {
    return { code: undefined, thrown, instance };
  } finally {
    heapPeak = Math.max(heapPeak, instance.heapBytes());
  }
}

/** Lists the archive (`l -slt`): its entries, or why it cannot be opened. */
async function list(): Promise<Listing | undefined> {
  const errors: string[] = [];
  const { code, thrown, instance } = await run(
    ["l", "-slt", `-t${input.type}`, "-p", "-sccUTF-8", archivePath],
    (line) => errors.push(line),
  );
  const listing = thrown === undefined ? parseListing(instance.stdout) : undefined;
  if (!listing || !instance.stdout.includes("--") || (code !== 0 && listing.entries.length === 0)) {
    const reason = instance.heapRefused
      ? `7-Zip needed more than its ${input.heapLimitBytes / 2 ** 20} MiB of memory to open it`
      : undefined;
    const outcome: Outcome = reason
      ? { code: "LIMITS", reason }
      : outcomeOfOpenFailure(
          [
            ...errors,
            ...(thrown === undefined ? [] : [String((thrown as Error)?.message ?? thrown)]),
          ],
          input.format,
          archivePath,
        );
    post({ type: "unopened", outcome });
    return undefined;
  }
  return listing;
}

/** Installs the output hooks on an instance: writes go to `output`, nowhere else. */
function hook(instance: Instance, output: Output): void {
  const { fs } = instance;
  const open = fs.open;
  const write = fs.write;
  const close = fs.close;
  const refuse = () => {
    throw new fs.ErrnoError(notPermitted);
  };
  fs.open = (path: string, flags: string | number, mode?: number) => {
    const stream = open(path, flags, mode) as FileStream;
    const writing = typeof flags === "number" ? (flags & 3) !== 0 : /[wa+]/.test(flags);
    if (writing && !fs.isChrdev(stream.node.mode)) {
      if (!stream.path.startsWith(`${outputDirectory}/`)) {
        close(stream);
        refuse();
      }
      output.begin(stream);
    }
    return stream;
  };
  fs.write = (
    stream: FileStream,
    heap: Int8Array,
    offset: number,
    length: number,
    ...rest: unknown[]
  ) => {
    if (output.owns(stream)) return output.write(heap, offset, length);
    if (fs.isChrdev(stream.node.mode)) return write(stream, heap, offset, length, ...rest);
    return refuse();
  };
  fs.close = (stream: FileStream) => {
    const result = close(stream);
    output.close(stream);
    return result;
  };
  fs.symlink = refuse;
  fs.link = refuse;
}

/** 7-Zip ran out of memory: past its bound (`heapLimitBytes`), or as 7-Zip said. */
function memoryOutcome(instance: Instance, said: Outcome | undefined): Outcome {
  return instance.heapRefused
    ? {
        code: "LIMITS",
        reason: `7-Zip needed more than its ${input.heapLimitBytes / 2 ** 20} MiB of memory`,
      }
    : (said ?? { code: "LIMITS", reason: "7-Zip ran out of memory" });
}

/** Why a run that threw ended: a bound, 7-Zip's memory, or a failure (a corrupt archive can trap). */
function thrownOutcome(thrown: unknown, instance: Instance): Outcome {
  if (thrown instanceof StopExtraction) return thrown.outcome;
  if (instance.heapRefused) return memoryOutcome(instance, undefined);
  const message = thrown instanceof Error ? thrown.message : `exception ${String(thrown)}`;
  return { code: "CORRUPT", reason: `7-Zip failed: ${message}` };
}

/** 7-Zip's switches for an extraction into the output directory, never asking anything. */
const extractSwitches = ["-p", "-y", "-bsp0", "-bso0", "-sccUTF-8", "-scsUTF-8", "-spd"];

/**
 * The names a run is given: the first run extracts everything less the entries not chosen
 * (`-x@`), the runs after one that stopped only the chosen entries left (`@`).
 */
function selectionArguments(listing: Listing, output: Output, round: number): string[] {
  if (input.singleStream) return [];
  const chosen = new Set(output.chosen);
  if (round === 0) {
    const others = listing.entries.filter((entry) => !chosen.has(entry.index) && !entry.directory);
    return others.length === 0 ? [] : ["-x@/in/names"];
  }
  return ["@/in/names"];
}

function selectionNames(listing: Listing, output: Output, round: number): string[] {
  const chosen = new Set(output.chosen);
  const entries =
    round === 0
      ? listing.entries.filter((entry) => !chosen.has(entry.index) && !entry.directory)
      : output.left().map((index) => listing.entries[index]);
  return entries.flatMap((entry) => (entry ? [entry.path] : []));
}

/**
 * Extracts the chosen entries. A run that stops at an entry (a bound, a failure) goes on in a
 * fresh instance with the entries left, as long as each run gets further.
 */
async function extract(listing: Listing, selection: readonly number[] | "all"): Promise<void> {
  const chosen = selection === "all" ? listing.entries.map((entry) => entry.index) : selection;
  const output = new Output(listing, chosen);
  let last: Outcome | undefined;
  for (let round = 0; round === 0 || output.left().length > 0; round += 1) {
    const progress = output.begun.size + output.failed.size;
    const names = selectionArguments(listing, output, round);
    const { code, thrown, instance } = await run(
      ["x", `-t${input.type}`, ...extractSwitches, `-o${outputDirectory}`, archivePath, ...names],
      (line) => output.error(line),
      (instance) => {
        if (names.length > 0)
          instance.fs.writeFile("/in/names", selectionNames(listing, output, round).join("\n"));
        hook(instance, output);
      },
    );
    last =
      thrown !== undefined
        ? thrownOutcome(thrown, instance)
        : code === 8 || instance.heapRefused || output.memory
          ? memoryOutcome(instance, output.memory)
          : undefined;
    if (output.current) {
      if (last) output.current.outcome ??= last;
      output.close(output.current.stream);
    }
    output.flush();
    if (output.exhausted) return post({ type: "done", outcome: output.exhausted });
    if (input.singleStream && output.begun.size === 0) {
      post({
        type: "unopened",
        outcome: last ?? outcomeOfOpenFailure(output.unmatched, input.format, archivePath),
      });
      return post({ type: "done" });
    }
    const advanced = output.begun.size + output.failed.size > progress;
    if (thrown === undefined || !advanced || input.singleStream) break;
  }
  if (output.trailing)
    post({ type: "trailing", reason: "7-Zip found data after the end of the stream" });
  if (output.unmatched.length > 0 && !input.singleStream)
    post({
      type: "failed",
      entry: -1,
      outcome: { code: "CORRUPT", reason: `7-Zip: ${output.unmatched.slice(0, 5).join("; ")}` },
    });
  post({ type: "done", outcome: last });
}

/** One container: listed (or taken as one stream), then extracted as the extractor asks. */
async function runJob(): Promise<void> {
  const single: Listing = {
    entries: [
      { index: 0, path: input.archiveName, encrypted: false, directory: false, link: false },
    ],
    problems: [],
  };
  const listing = input.singleStream ? single : await list();
  if (!listing) return;
  post({ type: "listing", listing });
  const { selection } = await message("extract");
  if (selection !== "all" && selection.length === 0) return post({ type: "done" });
  await extract(listing, selection);
}

// Jobs one after another: a worker is kept for the next container once a job ended.
for (;;) {
  const { job } = await message("start");
  try {
    startJob(job);
    await runJob();
  } catch (error) {
    const reason = `7-Zip's worker failed: ${error instanceof Error ? error.message : String(error)}`;
    post({ type: "unopened", outcome: { code: "CORRUPT", reason } });
  } finally {
    container?.close();
    post({ type: "idle", heapBytes: heapPeak });
  }
}
