import { type Artifact, raceSignal } from "@engine/core";
import { type RootLook, type UnpackEvent, unpackResolved } from "./unpack.js";
import type { ResolvedUnpackOptions } from "./unpack-options.js";

/** A scan following a shared walk. */
interface Follower {
  /** Events it asked for (the next one it gets is number `asked`, counting from 1). */
  asked: number;
  deadline: number | undefined;
  /** Set when the walk went on without it before it asked for anything: it walks on its own. */
  detached: boolean;
}

/** An event the walk produced, kept until every follower has had it. */
interface Produced {
  result: Promise<IteratorResult<UnpackEvent>>;
  /** What it holds that the walk would let go when it moves on: a member on disk cannot be kept. */
  held: { bytes: number; keepable: boolean } | undefined;
}

/**
 * One walk of an artifact's containers for every unpacking wrapper that scans that artifact at
 * once with the same options (the backends of a multi-scanner): each container is decoded
 * once, not once per backend, and every follower sees every event, in order.
 *
 * The walk lets go of a member when it moves on (a member on disk is removed). It moves on
 * when a follower asks for more and every other one is done with the latest event, or that
 * event can be kept for them: not a member on disk, the members kept within `keepBytes` (in
 * memory) and the events kept within 1,024. Else a follower that has not asked for anything
 * yet (still scanning the outer artifact) is let go, to walk on its own when it asks; one
 * already walking is waited for. The walk runs until the latest follower's deadline and stops
 * when the last follower leaves.
 */
class SharedWalk {
  readonly #followers = new Set<Follower>();
  readonly #stop = new AbortController();
  #events: AsyncGenerator<UnpackEvent> | undefined;
  /** Events produced and not yet had by every follower; the first is number `#first`. */
  readonly #kept: Produced[] = [];
  #first = 1;
  #keptBytes = 0;
  /** Set once the walk ended (its last event, or its failure, was produced). */
  #finished = false;
  /** Resolves when the walk produces its next event (every waiting follower wakes). */
  #moved = nextMove();

  constructor(
    private readonly begin: (
      signal: AbortSignal,
      deadline: number | undefined,
    ) => AsyncGenerator<UnpackEvent>,
    private readonly keepBytes: number,
    /** Called once, when the walk starts or every follower left before it did. */
    private readonly closed: () => void,
  ) {}

  /** True once the walk produced its first event: a scan joining later would miss events. */
  get started(): boolean {
    return this.#events !== undefined;
  }

  /** Events produced so far. */
  get #produced(): number {
    return this.#first - 1 + this.#kept.length;
  }

  /** A new follower, from the first event on. Only before the walk started. */
  join(deadline: number | undefined): Follower {
    const follower = { asked: 0, deadline, detached: false };
    this.#followers.add(follower);
    return follower;
  }

  /**
   * The follower's next event, once the walk produced it (see the class); undefined when the
   * walk went on without this follower before it asked for anything.
   */
  async next(
    follower: Follower,
    signal: AbortSignal,
  ): Promise<IteratorResult<UnpackEvent> | undefined> {
    if (follower.detached) return undefined;
    follower.asked += 1;
    this.#advance();
    while (this.#produced < follower.asked) {
      await raceSignal(this.#moved.promise, signal);
      if (follower.detached) return undefined;
    }
    const produced = this.#kept[follower.asked - this.#first] as Produced;
    this.#forget();
    return raceSignal(produced.result, signal);
  }

  /** The follower is done: the others go on without it; the last one stops the walk. */
  leave(follower: Follower): void {
    if (!this.#followers.delete(follower)) return;
    if (this.#followers.size > 0) {
      this.#forget();
      this.#advance();
      return;
    }
    // The walk's own finally disposes of the member it holds and its temp files.
    if (this.#finished) return;
    this.#stop.abort(everyFollowerLeft);
    this.#events?.return(undefined).catch(() => {});
    if (!this.started) this.closed();
  }

  #advance(): void {
    const produced = this.#produced;
    if (![...this.#followers].some((follower) => follower.asked > produced)) return;
    const behind = [...this.#followers].filter((follower) => follower.asked <= produced);
    if (produced > 0 && behind.length > 0 && !this.#mayKeepLatest()) {
      if (behind.some((follower) => follower.asked > 0)) return; // wait for it
      for (const follower of behind) {
        follower.detached = true;
        this.#followers.delete(follower);
      }
      this.#forget();
    }
    if (!this.#events) {
      this.#events = this.begin(this.#stop.signal, this.#latestDeadline());
      this.closed();
    }
    const entry: Produced = { result: this.#events.next(), held: undefined };
    entry.result.then(
      (next) => {
        if (next.done) this.#finished = true;
        const member = next.done ? undefined : next.value.kind === "member" && next.value.member;
        entry.held = member
          ? { bytes: member.size, keepable: member.artifact.path === undefined }
          : { bytes: 0, keepable: true };
        this.#keptBytes += entry.held.bytes;
      },
      () => {
        // Each follower meets the failure when it asks for it; none may be left unhandled.
        this.#finished = true;
      },
    );
    this.#kept.push(entry);
    const moved = this.#moved;
    this.#moved = nextMove();
    moved.resolve();
  }

  /** Whether the latest event may stay for the followers behind once the walk moves on. */
  #mayKeepLatest(): boolean {
    const held = this.#kept.at(-1)?.held;
    return (
      held?.keepable === true &&
      this.#keptBytes <= this.keepBytes &&
      this.#kept.length <= maximumKeptEvents
    );
  }

  /** Lets go of the events every follower has had. */
  #forget(): void {
    let oldest = Number.POSITIVE_INFINITY;
    for (const follower of this.#followers) oldest = Math.min(oldest, follower.asked);
    // Every follower has had the events before the one it asked for last.
    while (this.#kept.length > 1 && this.#first < oldest) {
      this.#keptBytes -= this.#kept.shift()?.held?.bytes ?? 0;
      this.#first += 1;
    }
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

/** A promise and what resolves it (Node 20 has no `Promise.withResolvers`). */
function nextMove(): { promise: Promise<void>; resolve(): void } {
  let resolve = (): void => {};
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** Walks not yet started, by artifact and options, that a scan of the same artifact may join. */
const open = new WeakMap<Artifact, Map<string, SharedWalk>>();

/**
 * Joins the walk of `artifact` with `settings` (the key `settingsKey`) that the other
 * unpacking wrappers scanning it now will follow, or starts one. Join before the first `await`
 * of the scan, so that the wrappers a multi-scanner starts together meet before the walk
 * begins; a scan that comes after it began walks on its own (it never misses an event), as
 * does one the walk went on without (see {@link SharedWalk}). `events` yields the walk's events with `signal` as this scan's stop; `leave()` (also when
 * `events` was never read) lets the walk go on without this scan, and stops it after the last.
 */
export function followWalk(
  artifact: Artifact,
  settings: ResolvedUnpackOptions,
  settingsKey: string,
  look: Promise<RootLook | undefined> | undefined,
  { signal, deadline }: { signal: AbortSignal; deadline: number | undefined },
): { events: AsyncIterable<UnpackEvent>; leave(): void } {
  let walks = open.get(artifact);
  if (!walks) {
    walks = new Map();
    open.set(artifact, walks);
  }
  let walk = walks.get(settingsKey);
  if (!walk || walk.started) {
    const created: SharedWalk = new SharedWalk(
      (walkSignal, walkDeadline) =>
        walkWithLook(artifact, settings, look, { signal: walkSignal, deadline: walkDeadline }),
      settings.memoryLimitBytes,
      () => {
        if (walks.get(settingsKey) === created) walks.delete(settingsKey);
        if (walks.size === 0 && open.get(artifact) === walks) open.delete(artifact);
      },
    );
    walk = created;
    walks.set(settingsKey, walk);
  }
  const shared = walk;
  const follower = shared.join(deadline);
  const leave = () => shared.leave(follower);
  async function* events(): AsyncGenerator<UnpackEvent> {
    try {
      for (;;) {
        const next = await shared.next(follower, signal);
        if (!next) {
          // The walk went on before this scan asked for anything: it walks from the start alone.
          yield* walkWithLook(artifact, settings, look, { signal, deadline });
          return;
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      leave();
    }
  }
  return { events: events(), leave };
}

/** The walk of `artifact`, from the look at it when one was taken. */
async function* walkWithLook(
  artifact: Artifact,
  settings: ResolvedUnpackOptions,
  look: Promise<RootLook | undefined> | undefined,
  context: { signal: AbortSignal; deadline: number | undefined },
): AsyncGenerator<UnpackEvent> {
  yield* unpackResolved(artifact, settings, context, await look);
}
