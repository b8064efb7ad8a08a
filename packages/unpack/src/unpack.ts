import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { promisify } from "node:util";
import {
  type Artifact,
  artifactFromBytes,
  createScanSignal,
  EngineError,
  errorFromSignal,
  parseOptions,
} from "@engine/core";
import {
  type ContainerFormat,
  headBytes,
  hintedFormats,
  identifyContainer,
} from "./container-formats.js";
import {
  type ExtractContext,
  type LimitName,
  type SkipCode,
  UnpackSkip,
} from "./extractors/extractor.js";
import { extractorFor } from "./extractors/extractor-table.js";
import { ByteBudget, copyFacts, MemberStore, type StoredMember } from "./member-store.js";
import {
  type ResolvedUnpackOptions,
  type UnpackOptions,
  unpackOptionsSchema,
} from "./unpack-options.js";

/** A member of a container, stored and readable until the next event is asked for. */
export interface UnpackedMember {
  /** Where it is: `outer.zip!/dir/inner.7z!/a.exe` (each `!/` enters a container). */
  path: string;
  /** 1 for a member of the root, 2 for a member of a member, ... */
  depth: number;
  /** The format of the container it came out of. */
  container: ContainerFormat;
  /** How it was stored in that container, when the format has methods (`deflate`, `ppmd`, a 7z chain such as `delta lzma`). */
  method?: string | undefined;
  /** True when a standard reader of the container does not show it (appended data, an entry missing from a zip's central directory). */
  hidden?: boolean | undefined;
  /** Its content (in memory, or a private temp file removed when the walk moves on). */
  artifact: Artifact;
  /** Decoded bytes. */
  size: number;
  /** SHA-256 of its content (lowercase hex). */
  sha256: string;
}

/** What an unpack finds, in order. */
export type UnpackEvent =
  | { kind: "member"; member: UnpackedMember }
  /** A container is entered: its members follow (its own bytes were the previous member, or the root). */
  | { kind: "container"; path: string; depth: number; format: ContainerFormat }
  /** Something not looked into, and why (`SKIPPED:<code>`): never to be taken as benign. */
  | {
      kind: "skipped";
      path: string;
      depth: number;
      code: SkipCode;
      reason: string;
      limit?: LimitName | undefined;
    };

/** Options of one {@link unpack}: the bounds, and when to stop. */
export type UnpackCallOptions = UnpackOptions & {
  /** Stops the walk (its reason is thrown). */
  signal?: AbortSignal | undefined;
  /** Absolute deadline in epoch ms: past it the walk throws `ScanTimeoutError`. */
  deadline?: number | undefined;
};

/** Longest member name kept in a path, in characters (a name is data, never a file path). */
const maximumNameLength = 512;

/**
 * A name as it appears in a member path: `\` as `/`, control characters (C0, C1) and
 * direction marks and overrides (which reorder what a terminal or a report shows: `exe.txt`
 * spelled backwards) escaped, bounded.
 */
function displayName(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: escaping control characters is the point
  const control = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  const escaped = (character: string) => {
    const code = character.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  };
  const cleaned = name.replace(/\\/g, "/").replace(/^\/+/, "").replace(control, escaped);
  const bounded =
    cleaned.length > maximumNameLength ? `${cleaned.slice(0, maximumNameLength)}...` : cleaned;
  return bounded || "(unnamed)";
}

/** Bytes at the end an identification reads: a zip's end record and its longest comment. */
const tailBytes = 64 * 1024 + 22;

/** The callback file API as promises: lighter than `FileHandle` for a few reads of many files. */
const openFile = promisify(fs.open);
const statFile = promisify(fs.fstat);
const readAt = promisify(fs.read);
const closeFile = promisify(fs.close);

/**
 * `length` bytes of an open file from `start`, fewer only at its end, or at `end` (the size a
 * walk gave: reached, it is taken as the end without one more read to see it).
 */
async function readSpan(
  descriptor: number,
  start: number,
  length: number,
  end?: number,
): Promise<Uint8Array> {
  const buffer = Buffer.allocUnsafe(Math.max(0, length));
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await readAt(descriptor, buffer, filled, length - filled, start + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
    if (start + filled === end) break;
  }
  return buffer.subarray(0, filled);
}

/** The head and tail slices of `size` bytes. */
function slices(size: number): { headEnd: number; tailStart: number } {
  return { headEnd: Math.min(size, headBytes), tailStart: Math.max(0, size - tailBytes) };
}

/**
 * The first bytes (to identify a format) and the last ones (a zip's end record) of an
 * artifact (`size` bytes, or a file's size now when not given): a file through one
 * descriptor, bytes without a copy. `content` is the whole content when that was read (bytes
 * in memory, a file no longer than a head and a tail), else undefined.
 */
async function headAndTail(
  artifact: Artifact,
  signal: AbortSignal | undefined,
  knownSize?: number,
): Promise<{ head: Uint8Array; tail: Uint8Array; content: Uint8Array | undefined }> {
  if (artifact.path === undefined) {
    const all = await artifact.bytes({ signal });
    const { headEnd, tailStart } = slices(all.byteLength);
    return { head: all.subarray(0, headEnd), tail: all.subarray(tailStart), content: all };
  }
  // Without blocking on a FIFO swapped in since the walk (it then reads as empty: no container).
  const descriptor = await openFile(artifact.path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    // A file no longer than a head and a tail is read once, and needs no stat: a short read
    // is its end, and its tail holds its head. Its known size and one byte more are asked for:
    // that byte coming back means it is longer than it was (it grew, or it is a procfs file that
    // says 0), and it is read again as a file of unknown size.
    const whole = headBytes + tailBytes;
    if (knownSize === undefined || knownSize <= whole) {
      const wanted = Math.min(whole, (knownSize ?? Number.POSITIVE_INFINITY) + 1);
      let first = await readSpan(descriptor, 0, wanted, knownSize);
      if (first.byteLength === wanted && wanted < whole)
        first = await readSpan(descriptor, 0, whole);
      if (first.byteLength < whole) {
        const { headEnd, tailStart } = slices(first.byteLength);
        return {
          head: first.subarray(0, headEnd),
          tail: first.subarray(tailStart),
          content: first,
        };
      }
    }
    const size =
      knownSize !== undefined && knownSize > whole ? knownSize : (await statFile(descriptor)).size;
    const { headEnd, tailStart } = slices(size);
    const head = await readSpan(descriptor, 0, headEnd);
    return {
      head,
      tail: await readSpan(descriptor, tailStart, size - tailStart),
      content: undefined,
    };
  } finally {
    await closeFile(descriptor);
  }
}

/** One walk's state: the bounds, the store, what was seen. */
class Walk {
  readonly store: MemberStore;
  readonly budget: ByteBudget;
  readonly seen = new Set<string>();
  /** Entries met in all (members, duplicates, skips): bounded by maxMembers. */
  entries = 0;
  /** Set when a root-wide bound (members, total bytes) stops everything. */
  stopped: UnpackSkip | undefined;
  /** When the walk last let the event loop turn (performance.now()). */
  #lastTurn = performance.now();

  constructor(
    readonly options: ResolvedUnpackOptions,
    readonly signal: AbortSignal,
  ) {
    this.budget = new ByteBudget(options.limits.maxTotalBytes);
    this.store = new MemberStore({
      limits: options.limits,
      budget: this.budget,
      memoryLimitBytes: options.memoryLimitBytes,
      temporaryDirectory: options.temporaryDirectory,
      signal,
    });
  }

  /** {@link spool} of a replayable artifact whose whole content is already in hand. */
  spoolBytes(artifact: Artifact, content: Uint8Array): StoredMember {
    return {
      artifact: artifactFromBytes(content, copyFacts(artifact, content.byteLength)),
      size: content.byteLength,
      sha256: createHash("sha256").update(content).digest("hex"),
      dispose: async () => {},
    };
  }

  /** The root, hashed, as a replayable artifact (a stream is read once into the store). */
  async spool(artifact: Artifact): Promise<StoredMember> {
    if (artifact.replayable) {
      // Hashed by reading it; the artifact itself is walked (a file stays a file).
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of artifact.stream({ signal: this.signal })) {
        hash.update(chunk);
        size += chunk.byteLength;
      }
      return { artifact, size, sha256: hash.digest("hex"), dispose: async () => {} };
    }
    // A stream is read once into a replayable copy (unbounded here: the caller bounds its input).
    const rootStore = new MemberStore({
      limits: {
        ...this.options.limits,
        maxMemberBytes: Number.MAX_SAFE_INTEGER,
        ratioFloorBytes: Number.POSITIVE_INFINITY,
      },
      budget: new ByteBudget(Number.POSITIVE_INFINITY),
      memoryLimitBytes: this.options.memoryLimitBytes,
      temporaryDirectory: this.options.temporaryDirectory,
    });
    const stored = await rootStore.store(artifact.stream({ signal: this.signal }), {
      filename: artifact.filename ?? "",
      compressedBytes: 1,
    });
    return {
      ...stored,
      dispose: async () => {
        await stored.dispose();
        await rootStore.close();
      },
    };
  }

  context(): ExtractContext {
    return {
      signal: this.signal,
      limits: this.options.limits,
      remainingBytes: () => this.budget.remaining,
    };
  }

  throwIfStopped(): void {
    if (this.signal.aborted) throw errorFromSignal(this.signal, "unpack");
  }

  /**
   * Lets the event loop turn when the walk has held it for `turnMs` (entries decoded from
   * memory never leave the microtask queue: the deadline's timer could not fire), then
   * throws if the walk was stopped meanwhile.
   */
  async breathe(): Promise<void> {
    if (performance.now() - this.#lastTurn >= turnMs) {
      await new Promise((resolve) => setImmediate(resolve));
      this.#lastTurn = performance.now();
    }
    this.throwIfStopped();
  }
}

/** Longest stretch a walk holds the event loop between two entries, in ms. */
const turnMs = 10;

/** A container (or the root) being walked. */
interface WalkNode {
  artifact: Artifact;
  path: string;
  depth: number;
  size: number;
  name: string;
  mimetype?: string | undefined;
  /** Its first and last bytes, when a look at them was already taken (the root's). */
  look?: Pick<RootLook, "head" | "tail"> | undefined;
}

function skipped(path: string, depth: number, skip: UnpackSkip): UnpackEvent {
  return { kind: "skipped", path, depth, code: skip.code, reason: skip.message, limit: skip.limit };
}

/** Reads an entry's content into the store; a bound hit is a skip of that entry. */
async function storeEntry(
  walk: Walk,
  content: AsyncIterable<Uint8Array>,
  filename: string,
  compressedBytes: number,
): Promise<StoredMember | UnpackSkip> {
  try {
    return await walk.store.store(content, { filename, compressedBytes });
  } catch (error) {
    walk.throwIfStopped();
    if (error instanceof UnpackSkip) {
      if (error.limit === "maxTotalBytes") walk.stopped = error;
      return error;
    }
    if (endsTheWalk(error)) throw error;
    return new UnpackSkip(
      "CORRUPT",
      `the member could not be decoded: ${(error as Error)?.message ?? String(error)}`,
    );
  }
}

/** The members of one container, recursively, as events. */
async function* walkContainer(
  walk: Walk,
  node: WalkNode,
  format: ContainerFormat,
): AsyncGenerator<UnpackEvent, boolean> {
  const extractor = extractorFor(format);
  if (!extractor) return false;
  const { limits } = walk.options;
  if (node.depth >= limits.maxDepth) {
    yield skipped(
      node.path,
      node.depth,
      new UnpackSkip(
        "LIMITS",
        `a ${format} container at depth ${node.depth}, past maxDepth (${limits.maxDepth})`,
        "maxDepth",
      ),
    );
    return true;
  }
  yield { kind: "container", path: node.path, depth: node.depth, format };
  const source = { artifact: node.artifact, size: node.size, name: node.name };
  for await (const entry of extractor.entries(source, walk.context())) {
    await walk.breathe();
    const path = `${node.path}!/${displayName(entry.name)}`;
    // Every entry counts, duplicates and skips too: a list of millions ends here.
    walk.entries += 1;
    if (walk.entries > limits.maxMembers) {
      walk.stopped = new UnpackSkip(
        "LIMITS",
        `more than maxMembers (${limits.maxMembers}) entries`,
        "maxMembers",
      );
      yield skipped(path, node.depth + 1, walk.stopped);
      return true;
    }
    if (entry.kind === "skipped") {
      yield {
        kind: "skipped",
        path,
        depth: node.depth + 1,
        code: entry.code,
        reason: entry.reason,
        limit: entry.limit,
      };
      continue;
    }
    const stored = await storeEntry(
      walk,
      entry.open(),
      entry.name.split("/").pop() ?? "",
      entry.compressedSize ?? node.size,
    );
    if (stored instanceof UnpackSkip) {
      yield skipped(path, node.depth + 1, stored);
      if (walk.stopped) return true;
      continue;
    }
    try {
      // The same content under a name that adds a format to try (`.br`) is walked again.
      const name = path.split("/").pop() ?? "";
      const key = `${stored.sha256}:${hintedFormats({ filename: name })}`;
      if (walk.options.skipDuplicates && walk.seen.has(key)) continue;
      walk.seen.add(key);
      const member: UnpackedMember = {
        path,
        depth: node.depth + 1,
        container: format,
        artifact: stored.artifact,
        size: stored.size,
        sha256: stored.sha256,
        ...(entry.method ? { method: entry.method } : {}),
        ...(entry.hidden ? { hidden: true } : {}),
      };
      if (stored.hold) memberHolds.set(member, stored.hold);
      yield { kind: "member", member };
      yield* walkNode(walk, {
        artifact: stored.artifact,
        path,
        depth: node.depth + 1,
        size: stored.size,
        name,
      });
      if (walk.stopped) return true;
    } finally {
      await stored.dispose();
    }
  }
  return true;
}

/** How to hold the file of a member on disk past the walk's moving on (see {@link holdMember}). */
const memberHolds = new WeakMap<UnpackedMember, () => () => Promise<void>>();

/**
 * Keeps the file of a member on disk that a walk yielded (and its store's directory) until the
 * returned release is called, even once the walk moved on or ended: a shared walk keeps a
 * member for a slower follower this way. Undefined for a member in memory (nothing to hold).
 */
export function holdMember(member: UnpackedMember): (() => Promise<void>) | undefined {
  return memberHolds.get(member)?.();
}

/** True for the errors that end the whole walk (the deadline, the caller's abort, a library that cannot load). */
function endsTheWalk(error: unknown): boolean {
  return (
    EngineError.isInstance(error) &&
    (error.code === "SCAN_TIMEOUT" ||
      error.code === "SCAN_ABORTED" ||
      error.code === "BACKEND_UNAVAILABLE") // a format library that cannot load (lazyLibrary)
  );
}

/**
 * Identifies a node and walks it as every format it may be: a polyglot (a zip in an ISO's
 * system area or padding, a zip after a brotli stream) shows each reader its own files, and
 * every view is looked into (members seen twice are scanned once). A format its content
 * announces (`certain`) that fails is `CORRUPT` (or the extractor's skip); one only a hint
 * suggests proves itself by its first member or skip, and failing before that, it is not
 * there. No format at all: plain bytes, no event.
 */
async function* walkNode(walk: Walk, node: WalkNode): AsyncGenerator<UnpackEvent> {
  const { head, tail } = node.look ?? (await headAndTail(node.artifact, walk.signal, node.size));
  const candidates = identifyContainer(head, {
    filename: node.name,
    mimetype: node.mimetype,
    tail,
  });
  for (const { format, certain } of candidates) {
    if (walk.stopped) return;
    yield* walkAs(walk, node, format, certain);
  }
}

/** Walks a node as one format (see {@link walkNode}). */
async function* walkAs(
  walk: Walk,
  node: WalkNode,
  format: ContainerFormat,
  certain: boolean,
): AsyncGenerator<UnpackEvent> {
  let proven = certain;
  const pending: UnpackEvent[] = [];
  const events = walkContainer(walk, node, format);
  try {
    let next = await events.next();
    for (; !next.done; next = await events.next()) {
      if (proven) {
        yield next.value;
        continue;
      }
      pending.push(next.value);
      if (next.value.kind !== "container") {
        proven = true;
        yield* pending.splice(0);
      }
    }
    // Decoded (or a guess that found nothing: not there); else recognised, not decoded.
    if (next.value || !certain) return;
    yield {
      kind: "skipped",
      path: node.path,
      depth: node.depth,
      code: "UNSUPPORTED",
      reason: `the ${format} format is recognised but not decoded`,
    };
  } catch (error) {
    walk.throwIfStopped();
    if (endsTheWalk(error)) throw error;
    if (!proven) return; // a guess that did not decode: not there
    const skip =
      error instanceof UnpackSkip
        ? error
        : new UnpackSkip(
            "CORRUPT",
            `the ${format} container could not be read: ${(error as Error)?.message ?? String(error)}`,
          );
    yield skipped(node.path, node.depth, skip);
  } finally {
    // A caller that stops early (a malicious member decides) closes the extractor now: its
    // worker, file handles and stored member are released here, not by a collection.
    await events.return(false);
  }
}

/**
 * Iterates the members of `artifact`, recursively: every container format of
 * `containerFormats` identified by its content (a name or declared type only adds formats to
 * try), each member stored (in memory or a private temp file) and yielded with its path
 * (`outer.zip!/a/b.7z!/c.exe`) and readable until the next event is asked for; a member that
 * is a container is entered right after it. Everything not looked into is a `skipped` event
 * with its code (`ENCRYPTED`, `LIMITS` and which, `UNSUPPORTED`, `CORRUPT`). Bounded by the
 * options' limits (depth, members, bytes per member and in all, ratio), duplicates skipped,
 * and the `deadline`/`signal` (thrown as `ScanTimeoutError`/`ScanAbortedError`).
 *
 * @example
 * for await (const event of unpack(artifactFromFile("mail.zip"))) {
 *   if (event.kind === "member") console.log(event.member.path, event.member.size);
 *   if (event.kind === "skipped") console.log("not looked into:", event.path, event.code);
 * }
 */
export async function* unpack(
  artifact: Artifact,
  options: UnpackCallOptions = {},
): AsyncGenerator<UnpackEvent> {
  const { signal, deadline, ...rest } = options;
  const settings = parseOptions(unpackOptionsSchema, rest, { where: "@engine/unpack: unpack" });
  yield* unpackResolved(artifact, settings, { signal, deadline });
}

/**
 * {@link unpack} with options already validated (the unpacking scanner's, once per scanner).
 * `look` is {@link lookAtRoot}'s answer for `artifact` when the caller already took it: it is
 * not taken again, and a root it read whole is walked from those bytes.
 */
export async function* unpackResolved(
  artifact: Artifact,
  settings: ResolvedUnpackOptions,
  { signal, deadline }: Pick<UnpackCallOptions, "signal" | "deadline">,
  look?: RootLook,
): AsyncGenerator<UnpackEvent> {
  // Most artifacts are no container: those are left at their first and last bytes, unhashed,
  // before a walk is set up (a stopped or late call goes on to throw below).
  const live = !signal?.aborted && (deadline === undefined || Date.now() < deadline);
  if (live && artifact.replayable) {
    look ??= await lookAtRoot(artifact, signal);
    if (look?.mayHold === false) return;
  }
  using stop = createScanSignal({ signal, deadline, scanner: "unpack" });
  const walk = new Walk(settings, stop.signal);
  let spooled: StoredMember | undefined;
  try {
    walk.throwIfStopped();
    // The root's own hash (never a declared one: a false one would hide a member as a
    // duplicate), and a stream read once into a replayable copy. A root the look read whole
    // (a small file) is walked from those bytes: hashed, identified and unpacked from one read.
    const snapshot = artifact.replayable ? look?.content : undefined;
    spooled = snapshot ? walk.spoolBytes(artifact, snapshot) : await walk.spool(artifact);
    const root: WalkNode = {
      artifact: spooled.artifact,
      path: rootPath(artifact),
      depth: 0,
      size: spooled.size,
      name: artifact.filename ?? "",
      mimetype: artifact.mimetype,
      // The look stands for what the walk reads only when the walk reads those very bytes (a
      // larger root's first and last bytes are read again: it may have changed since).
      look: snapshot ? look : undefined,
    };
    walk.seen.add(`${spooled.sha256}:${hintedFormats(artifact)}`);
    yield* walkNode(walk, root);
  } finally {
    await spooled?.dispose();
    await walk.store.close();
  }
}

/** A look at an artifact's first and last bytes: see {@link lookAtRoot}. */
export interface RootLook {
  head: Uint8Array;
  tail: Uint8Array;
  /**
   * The whole content, when the look read all of it and it is as long as the artifact says
   * (bytes in memory, a file up to 104 KiB that did not grow or shrink since its size was given).
   */
  content: Uint8Array | undefined;
  /** False when there is no format to try (exactly as the walk would find): nothing to walk. */
  mayHold: boolean;
}

/**
 * The first and last bytes of a replayable artifact, and whether by them, its name and its
 * type it may be a container; undefined (walk it) when it has neither a path nor a size.
 */
export async function lookAtRoot(
  artifact: Artifact,
  signal: AbortSignal | undefined,
): Promise<RootLook | undefined> {
  if (artifact.path === undefined && artifact.size === undefined) return undefined;
  const { head, tail, content } = await headAndTail(artifact, signal, artifact.size);
  const hints = { filename: artifact.filename ?? "", mimetype: artifact.mimetype, tail };
  const mayHold = identifyContainer(head, hints).length > 0;
  const whole = content?.byteLength === artifact.size ? content : undefined;
  return { head, tail, content: whole, mayHold };
}

/**
 * False when a replayable artifact is no container by its first and last bytes, its name and
 * its type (no format to try, exactly as {@link walkNode} would find): nothing to walk.
 */
export async function mayHoldContainers(
  artifact: Artifact,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  return (await lookAtRoot(artifact, signal))?.mayHold ?? true;
}

/** The root's name in member paths: its file name, or `(artifact)`. */
function rootPath(artifact: Artifact): string {
  const name = displayName(artifact.filename ?? "");
  return name === "(unnamed)" ? "(artifact)" : name;
}
