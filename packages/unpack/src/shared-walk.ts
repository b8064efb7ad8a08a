import { type Artifact, errorFromSignal, raceSignal } from "@engine/core";
import {
  holdMember,
  lookAtRoot,
  type RootLook,
  type UnpackEvent,
  type UnpackedMember,
  unpackResolved,
} from "./unpack.js";
import type { ResolvedUnpackOptions } from "./unpack-options.js";

/** A scan following a shared walk. */
interface Follower {
  /** Events it asked for (the next one it gets is number `asked`, counting from 1). */
  asked: number;
  deadline: number | undefined;
  /** Once the walk went on without it: releases the file of the member it was reading. */
  release?: (() => Promise<void>) | undefined;
}

/** An event the walk produced, kept until every follower has had it. */
interface Produced {
  result: Promise<IteratorResult<UnpackEvent>>;
  /** Its member, once produced (none for other events). */
  member?: UnpackedMember | undefined;
  /** Set once produced: the bytes of its member, and where they are. */
  held: { bytes: number; onDisk: boolean } | undefined;
  /** Releases the hold on its member's file, when the walk kept it for followers behind. */
  release?: (() => Promise<void>) | undefined;
}

/**
 * One walk of an artifact's containers for every unpacking wrapper that scans that artifact at
 * once with the same options (the backends of a multi-scanner): each container is decoded
 * once, not once per backend, and every follower sees every event, in order.
 *
 * Nobody waits for another follower: a backend slow on a member must not spend another
 * backend's deadline. When a follower asks for the next event, the walk moves on (letting go of
 * the latest member once it walked into it: one on disk is removed) if every other follower is
 * done with that member, or it can be kept for them: in memory within `keepBytes`, on disk
 * (its file held past the walk) within `keepDiskBytes`, and 1,024 events at most. Else, while
 * another follower still holds it, the one asking goes on by a walk of its own; otherwise the
 * followers behind do. A follower on a walk of its own decodes again what came before (the
 * cost of not waiting, past those bounds). The walk runs until the latest follower's deadline
 * and stops when the last follower leaves.
 */
class SharedWalk {
  readonly #followers = new Set<Follower>();
  /** Stops the walk once every follower left; made when it begins (most never do: no container). */
  #stop: AbortController | undefined;
  #events: AsyncGenerator<UnpackEvent> | undefined;
  /** Events produced and not yet had by every follower; the first is number `#first`. */
  readonly #kept: Produced[] = [];
  #first = 1;
  /** Bytes of the kept members, in memory and on disk. */
  readonly #keptBytes = { memory: 0, disk: 0 };
  /** Releases of held members under way (the last follower to leave waits for them). */
  readonly #releasing = new Set<Promise<void>>();
  /** Set once the walk ended (its last event, or its failure, was produced). */
  #finished = false;

  constructor(
    private readonly begin: (
      signal: AbortSignal,
      deadline: number | undefined,
    ) => AsyncGenerator<UnpackEvent>,
    /**
     * The look at the artifact's first and last bytes (see {@link lookAtRoot}) its followers
     * decide by and the walk starts from: taken once for all; undefined where the look failed
     * (a caller's abort included) or cannot be taken, and the walk then looks for itself.
     */
    readonly look: Promise<RootLook | undefined>,
    private readonly keep: { bytes: number; diskBytes: number },
    /** Called once, when the walk starts or every follower left before it did. */
    private readonly closed: () => void,
  ) {}

  /** True once the walk began: a scan joining later would miss events. */
  get started(): boolean {
    return this.#events !== undefined;
  }

  /** Events produced so far. */
  get #produced(): number {
    return this.#first - 1 + this.#kept.length;
  }

  /** A new follower, from the first event on. Only before the walk started. */
  join(deadline: number | undefined): Follower {
    const follower = { asked: 0, deadline };
    this.#followers.add(follower);
    return follower;
  }

  /**
   * The follower's next event; undefined when the walk goes on without this follower (it left,
   * or see the class): it then walks on its own.
   */
  async next(
    follower: Follower,
    signal: AbortSignal,
  ): Promise<IteratorResult<UnpackEvent> | undefined> {
    if (!this.#followers.has(follower)) {
      await this.#letGo(follower); // done with the member it was reading
      return undefined;
    }
    if (signal.aborted) throw errorFromSignal(signal);
    follower.asked += 1;
    if (follower.asked > this.#produced) this.#advance();
    if (!this.#followers.has(follower)) return undefined;
    const produced = this.#kept[follower.asked - this.#first] as Produced;
    this.#forget();
    // A failure is met by each follower as its own copy: each backend names it as its own.
    return raceSignal(produced.result, signal).catch((error: unknown) => {
      throw ownCopy(error);
    });
  }

  /**
   * The follower is done: the others go on without it. The last one stops the walk, and its
   * promise settles once the walk let go of what it held (its members on disk removed).
   */
  async leave(follower: Follower): Promise<void> {
    // Out of the set before any await: a hold taken for it meanwhile would never be released.
    const following = this.#followers.delete(follower);
    await this.#letGo(follower);
    if (!following) return;
    if (this.#followers.size > 0) {
      this.#forget();
      return;
    }
    if (!this.started) {
      this.closed();
      return;
    }
    if (!this.#finished) {
      this.#stop?.abort(everyFollowerLeft);
      await this.#events?.return(undefined).catch(() => {});
    }
    // What was kept for followers is let go too: the files it held are removed by now.
    for (const entry of this.#kept.splice(0)) this.#release(entry);
    await Promise.all(this.#releasing);
  }

  /** Produces the next event for the followers that asked for it, or lets them go (see the class). */
  #advance(): void {
    const produced = this.#produced;
    const behind = [...this.#followers].filter((follower) => follower.asked <= produced);
    if (produced > 0 && behind.length > 0 && !this.#keepLatest()) {
      const holding = behind.filter((follower) => follower.asked === produced);
      // Those still reading the latest member keep the walk; else those behind go.
      const leaving =
        holding.length > 0
          ? [...this.#followers].filter((follower) => follower.asked > produced)
          : behind;
      for (const follower of leaving) this.#goOnWithout(follower);
      this.#forget();
      if (holding.length > 0) return;
    }
    if (!this.#events) {
      this.#stop = new AbortController();
      this.#events = this.begin(this.#stop.signal, this.#latestDeadline());
      this.closed();
    }
    const entry: Produced = { result: this.#events.next(), held: undefined };
    entry.result.then(
      (next) => {
        if (next.done) this.#finished = true;
        const member = !next.done && next.value.kind === "member" ? next.value.member : undefined;
        entry.member = member;
        entry.held = { bytes: member?.size ?? 0, onDisk: member?.artifact.path !== undefined };
        this.#keptBytes[entry.held.onDisk ? "disk" : "memory"] += entry.held.bytes;
      },
      () => {
        // Each follower meets the failure when it asks for it; none may be left unhandled.
        this.#finished = true;
      },
    );
    this.#kept.push(entry);
  }

  /**
   * Whether the latest event may stay for the followers behind once the walk moves on (see
   * the class); a member on disk kept is held (its file outlives the walk's moving on).
   */
  #keepLatest(): boolean {
    const latest = this.#kept.at(-1);
    const held = latest?.held;
    if (!latest || !held || this.#kept.length > maximumKeptEvents) return false;
    if (!held.onDisk) return this.#keptBytes.memory <= this.keep.bytes;
    if (latest.release) return true;
    if (this.#keptBytes.disk > this.keep.diskBytes || !latest.member) return false;
    latest.release = holdMember(latest.member);
    return latest.release !== undefined;
  }

  /** Lets go of the events every follower has had. */
  #forget(): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const follower of this.#followers) oldest = Math.min(oldest, follower.asked);
    // Every follower has had the events before the one it asked for last.
    while (this.#kept.length > 1 && this.#first < oldest) {
      this.#release(this.#kept.shift() as Produced);
      this.#first += 1;
    }
  }

  /**
   * Goes on without `follower`, which then walks on its own; the member on disk it may be
   * reading stays until it asks for more or leaves.
   */
  #goOnWithout(follower: Follower): void {
    this.#followers.delete(follower);
    const reading =
      follower.asked >= this.#first ? this.#kept[follower.asked - this.#first] : undefined;
    if (reading?.member?.artifact.path !== undefined) follower.release = holdMember(reading.member);
  }

  /** Releases what the walk held for a follower it went on without. */
  async #letGo(follower: Follower): Promise<void> {
    const release = follower.release;
    follower.release = undefined;
    await release?.().catch(() => {});
  }

  /** Lets go of a kept event: its bytes no longer count, its member's file is released. */
  #release(entry: Produced): void {
    if (entry.held) this.#keptBytes[entry.held.onDisk ? "disk" : "memory"] -= entry.held.bytes;
    entry.held = undefined;
    const release = entry.release;
    entry.release = undefined;
    if (!release) return;
    const releasing = release().catch(() => {}); // rm with force: nothing to report
    this.#releasing.add(releasing);
    void releasing.finally(() => this.#releasing.delete(releasing));
  }

  /** The latest of the followers' deadlines (none when one has none). */
  #latestDeadline(): number | undefined {
    let latest = Number.NEGATIVE_INFINITY;
    for (const { deadline } of this.#followers) {
      if (deadline === undefined) return undefined;
      latest = Math.max(latest, deadline);
    }
    return Number.isFinite(latest) ? latest : undefined;
  }
}

/** Events a shared walk keeps for its followers behind at most (skips and containers hold no bytes). */
const maximumKeptEvents = 1024;

/**
 * The reason a shared walk stops when its last follower left before its end (made once: an
 * `abort()` without a reason makes a `DOMException` with a stack each time, measured 0.13 s of
 * a scan of 1,848 gzip files).
 */
const everyFollowerLeft = new Error("@engine/unpack: every scan following this walk left");

/** A copy of an error, of its class, with its own properties (`scanner` may be set on it). */
function ownCopy(error: unknown): unknown {
  if (typeof error !== "object" || error === null) return error;
  return Object.create(Object.getPrototypeOf(error), Object.getOwnPropertyDescriptors(error));
}

/** Walks not yet started, by artifact and options, that a scan of the same artifact may join. */
const open = new WeakMap<Artifact, Map<string, SharedWalk>>();

/**
 * Joins the walk of `artifact` with `settings` (the key `settingsKey`) that the other
 * unpacking wrappers scanning it now will follow, or starts one. Join before the first `await`
 * of the scan, so that the wrappers a multi-scanner starts together meet before the walk
 * begins; a scan that comes after it began walks on its own. So does one the walk went on
 * without (see {@link SharedWalk}): from the start, passing over the members and skips it
 * already had (same path, same content), so it misses none. `events` yields the walk's events
 * with `signal` as this scan's stop; `leave()` (also when `events` was never read) lets the
 * walk go on without this scan, and stops it after the last, resolving once the walk let go
 * of what it held.
 */
export function followWalk(
  artifact: Artifact,
  settings: ResolvedUnpackOptions,
  settingsKey: string,
  context: { signal: AbortSignal; deadline: number | undefined },
): {
  look: Promise<RootLook | undefined>;
  events: AsyncIterable<UnpackEvent>;
  leave(): Promise<void>;
} {
  const shared = openWalk(artifact, settings, settingsKey, context.signal);
  const { look } = shared;
  const follower = shared.join(context.deadline);
  const leave = () => shared.leave(follower);
  async function* events(): AsyncGenerator<UnpackEvent> {
    // The events had from the shared walk, by key, with how many times (a walk may yield
    // the same key twice: identical members with skipDuplicates off, two equal skips).
    const had = new Map<string, number>();
    try {
      for (;;) {
        const next = await shared.next(follower, context.signal);
        if (!next) {
          for await (const event of walkWithLook(artifact, settings, look, context)) {
            const key = eventKey(event);
            const times = had.get(key) ?? 0;
            if (times === 0) yield event;
            else had.set(key, times - 1);
          }
          return;
        }
        if (next.done) return;
        const key = eventKey(next.value);
        had.set(key, (had.get(key) ?? 0) + 1);
        yield next.value;
      }
    } finally {
      await leave();
    }
  }
  return { look, events: events(), leave };
}

/** The walk of `artifact` with `settings` not yet started, or a new one. */
function openWalk(
  artifact: Artifact,
  settings: ResolvedUnpackOptions,
  settingsKey: string,
  signal: AbortSignal,
): SharedWalk {
  let walks = open.get(artifact);
  if (!walks) {
    walks = new Map();
    open.set(artifact, walks);
  }
  const waiting = walks.get(settingsKey);
  if (waiting && !waiting.started) return waiting;
  const byOptions = walks;
  const look = artifact.replayable
    ? lookAtRoot(artifact, signal).catch(() => undefined)
    : Promise.resolve(undefined);
  const created: SharedWalk = new SharedWalk(
    (walkSignal, deadline) =>
      walkWithLook(artifact, settings, look, { signal: walkSignal, deadline }),
    look,
    // Kept for a slower backend: in memory as the store keeps members, on disk one member's worth.
    { bytes: settings.memoryLimitBytes, diskBytes: settings.limits.maxMemberBytes },
    () => {
      if (byOptions.get(settingsKey) === created) byOptions.delete(settingsKey);
      if (byOptions.size === 0 && open.get(artifact) === byOptions) open.delete(artifact);
    },
  );
  walks.set(settingsKey, created);
  return created;
}

/**
 * What makes two events of walks of one artifact the same for a scan: a member by its path,
 * its content and what a backend picks members by (`scanMember`: its container, method and
 * whether it is hidden), a skip by its path and why, a container by its path and format.
 */
function eventKey(event: UnpackEvent): string {
  if (event.kind === "member") {
    const { path, sha256, container, method, hidden } = event.member;
    return `member\0${path}\0${sha256}\0${container}\0${method ?? ""}\0${hidden === true}`;
  }
  if (event.kind === "skipped") return `skipped\0${event.path}\0${event.code}\0${event.reason}`;
  return `container\0${event.path}\0${event.format}`;
}

/** The walk of `artifact`, from the look at it when one was taken. */
async function* walkWithLook(
  artifact: Artifact,
  settings: ResolvedUnpackOptions,
  look: Promise<RootLook | undefined>,
  context: { signal: AbortSignal; deadline: number | undefined },
): AsyncGenerator<UnpackEvent> {
  yield* unpackResolved(artifact, settings, context, await look);
}
