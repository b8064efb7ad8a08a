import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import {
  type Artifact,
  artifactFromBytes,
  BackendUnavailableError,
  createEicarScanner,
  defineScanner,
  type Scanner,
} from "@engine/core";
import { pack } from "tar-stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createUnpackingScanner, type UnpackOptions, type UnpackReport } from "../src/index.js";
import { MemberStore } from "../src/member-store.js";
import { followWalk } from "../src/shared-walk.js";
import { unpackOptionsSchema } from "../src/unpack-options.js";
import { eicarBytes, tarOf } from "./fixtures.js";
import { inTemporaryDirectory } from "./zip-fixtures.js";

const report = (result: { metadata: Record<string, unknown> }) =>
  result.metadata.unpack as UnpackReport;

/**
 * A scanner that records the name and content of what it is given (after `delayMs`, reading
 * it then: a member must still be readable), benign unless it is EICAR.
 */
function recordingScanner(name: string, delayMs = 0, onScan?: () => void) {
  const seen: Record<string, string> = {};
  const eicar = createEicarScanner();
  const scanner: Scanner = defineScanner({
    name,
    scan: async (artifact, context) => {
      onScan?.();
      if (delayMs > 0) await sleep(delayMs);
      seen[artifact.filename ?? "(root)"] = Buffer.from(await artifact.bytes()).toString("latin1");
      return eicar.scan(artifact, { signal: context.signal, deadline: context.deadline });
    },
  });
  return { scanner, seen };
}

/** `outer.tar.gz` of five text files, EICAR (compressed: the tar's bytes do not hold it) third. */
async function archiveOfFive(): Promise<Artifact> {
  const files: Record<string, Uint8Array | string> = {};
  for (const index of [1, 2, 3, 4, 5]) files[`file-${index}.txt`] = `content ${index}\n`;
  files["file-3.txt"] = gzipSync(eicarBytes());
  return artifactFromBytes(gzipSync(await tarOf(files)), { filename: "outer.tar.gz" });
}

/** What an inner scanner is given: the root, then the seven members. */
const scannedNames = [
  "outer.tar.gz",
  "outer.tar",
  "file-1.txt",
  "file-2.txt",
  "file-3.txt",
  "content", // file-3.txt's gzip content: EICAR
  "file-4.txt",
  "file-5.txt",
];

afterEach(() => {
  vi.restoreAllMocks();
});

describe("createUnpackingScanner: wrappers scanning one artifact at once share one walk", () => {
  it("decodes each member once for both, and each wrapper sees every member", async () => {
    const store = vi.spyOn(MemberStore.prototype, "store");
    const one = recordingScanner("one");
    const two = recordingScanner("two", 5); // slower: each member is kept for it (in memory)
    const artifact = await archiveOfFive();
    const [first, second] = await Promise.all([
      createUnpackingScanner(quiet(one.scanner)).scan(artifact),
      createUnpackingScanner(quiet(two.scanner)).scan(artifact),
    ]);
    expect(report(first).members).toBe(report(second).members);
    for (const seen of [one.seen, two.seen]) expect(Object.keys(seen)).toEqual(scannedNames);
    // Every member decoded and stored once (each wrapper walked on its own before: twice).
    expect(store).toHaveBeenCalledTimes(report(first).members);
    // The slower one read every member's content after the faster one moved on.
    expect(two.seen["file-5.txt"]).toBe("content 5\n");
  });

  it("lets the other wrapper walk on to the end when one stops at a detection", async () => {
    const eicarOnly = createUnpackingScanner(createEicarScanner());
    const all = recordingScanner("all");
    const artifact = await archiveOfFive();
    const [detected, walked] = await Promise.all([
      eicarOnly.scan(artifact),
      createUnpackingScanner(quiet(all.scanner)).scan(artifact),
    ]);
    expect(detected.verdict).toBe("malicious");
    expect(report(detected).detected_in).toBe("outer.tar.gz!/outer.tar!/file-3.txt!/content");
    expect(Object.keys(all.seen)).toEqual(expect.arrayContaining(["file-4.txt", "file-5.txt"]));
    expect(report(walked).members).toBe(7);
  });

  it("walks on its own for a scan that comes once the walk began: it misses no member", async () => {
    const store = vi.spyOn(MemberStore.prototype, "store");
    let late: Promise<unknown> | undefined;
    const lateRecorder = recordingScanner("late");
    const artifact = await archiveOfFive();
    const early = recordingScanner("early", 0, () => {
      // At the early wrapper's first member, the walk has begun.
      if (Object.keys(early.seen).length === 1 && !late)
        late = createUnpackingScanner(quiet(lateRecorder.scanner)).scan(artifact);
    });
    const result = await createUnpackingScanner(quiet(early.scanner)).scan(artifact);
    await late;
    expect(Object.keys(lateRecorder.seen).sort()).toEqual(Object.keys(early.seen).sort());
    expect(store).toHaveBeenCalledTimes(2 * report(result).members);
  });

  it("goes on for the other wrapper when one is stopped, and stops when both are", async () => {
    const stopped = new AbortController();
    const stopping = recordingScanner("stopping", 0, () => {
      if (Object.keys(stopping.seen).length === 2) stopped.abort();
    });
    const going = recordingScanner("going", 2);
    const artifact = await archiveOfFive();
    const [first, second] = await Promise.allSettled([
      createUnpackingScanner(quiet(stopping.scanner)).scan(artifact, { signal: stopped.signal }),
      createUnpackingScanner(quiet(going.scanner)).scan(artifact),
    ]);
    expect(first.status).toBe("rejected");
    expect(second.status).toBe("fulfilled");
    expect(Object.keys(going.seen)).toEqual(expect.arrayContaining(["file-5.txt", "content"]));
    // Both stopped while the walk is held at its first member: the walk ends, no later member is decoded.
    const store = vi.spyOn(MemberStore.prototype, "store");
    const both = new AbortController();
    const holding = (name: string) =>
      createUnpackingScanner(
        defineScanner({
          name,
          scan: async (member, context) => {
            if (member.filename === "outer.tar") both.abort();
            await sleep(1);
            context.signal?.throwIfAborted();
            return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
          },
        }),
      );
    const ended = await Promise.allSettled([
      holding("a").scan(artifact, { signal: both.signal }),
      holding("b").scan(artifact, { signal: both.signal }),
    ]);
    expect(ended.map((outcome) => outcome.status)).toEqual(["rejected", "rejected"]);
    await sleep(20);
    expect(store).toHaveBeenCalledTimes(1); // outer.tar only
  });

  it("keeps members in memory for a wrapper still scanning the outer artifact: the other runs ahead", async () => {
    const store = vi.spyOn(MemberStore.prototype, "store");
    const { first, second, slow, fastDone } = await fastBesideSlowOuter({});
    // The fast one walked to the end while the slow one still scanned the outer artifact.
    expect(fastDone).toBeLessThan(slow.rootDone());
    expect(Object.keys(slow.seen)).toEqual(scannedNames);
    expect(report(second).members).toBe(report(first).members);
    expect(store).toHaveBeenCalledTimes(report(first).members); // still decoded once
  });

  it("keeps members on disk for it too, their files held until it read them", async () => {
    const store = vi.spyOn(MemberStore.prototype, "store");
    await inTemporaryDirectory(async (temporaryDirectory) => {
      const options = { memoryLimitBytes: 4, temporaryDirectory };
      const { first, slow, fastDone } = await fastBesideSlowOuter(options);
      expect(fastDone).toBeLessThan(slow.rootDone());
      expect(Object.keys(slow.seen)).toEqual(scannedNames);
      expect(slow.seen["file-5.txt"]).toBe("content 5\n"); // read after the walk moved on
      expect(store).toHaveBeenCalledTimes(report(first).members); // still decoded once
      expect(readdirSync(temporaryDirectory)).toEqual([]);
    });
  });

  it("past one member's worth kept on disk, lets the wrapper behind walk on its own", async () => {
    // The tar member (~12 KB) and a 3 KB member are more than maxMemberBytes (12,000) kept.
    const store = vi.spyOn(MemberStore.prototype, "store");
    const files = { "a.bin": randomBytes(3000), "b.bin": randomBytes(3000), "c.bin": "c\n" };
    const artifact = await tarGzOf(files);
    await inTemporaryDirectory(async (temporaryDirectory) => {
      const options = onDiskWithin12000(temporaryDirectory);
      const fast = recordingScanner("fast");
      const slow = slowAtRoot("slow", 150);
      const [first, second] = await Promise.all([
        createUnpackingScanner(quiet(fast.scanner), options).scan(artifact),
        createUnpackingScanner(slow.scanner, options).scan(artifact),
      ]);
      expect([report(first).members, report(second).members]).toEqual([4, 4]);
      expect(Object.keys(slow.seen).sort()).toEqual([
        "a.bin",
        "b.bin",
        "c.bin",
        "outer.tar",
        "outer.tar.gz",
      ]);
      expect(slow.seen["c.bin"]).toBe("c\n");
      expect(store).toHaveBeenCalledTimes(8); // the slow one walked again
      expect(readdirSync(temporaryDirectory)).toEqual([]);
    });
  });

  it("keeps the member on disk a wrapper sent on its own was reading until it moves on", async () => {
    // Each gzip decodes to 10,000 bytes: kept for the slow one, two are past maxMemberBytes.
    const files = { "a.gz": gzipSync("a".repeat(10_000)), "b.gz": gzipSync("b".repeat(10_000)) };
    const artifact = await tarGzOf(files);
    await inTemporaryDirectory(async (temporaryDirectory) => {
      const options = onDiskWithin12000(temporaryDirectory);
      const fast = recordingScanner("fast");
      const seen: Record<string, string> = {};
      const slowAtA = defineScanner({
        name: "slow",
        scan: async (member) => {
          if (member.filename === "a") await sleep(100); // the fast one goes past b meanwhile
          seen[member.filename ?? ""] = Buffer.from(await member.bytes()).toString("latin1");
          return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
        },
      });
      const [, second] = await Promise.all([
        createUnpackingScanner(quiet(fast.scanner), options).scan(artifact),
        createUnpackingScanner(slowAtA, options).scan(artifact),
      ]);
      expect(second.verdict).toBe("benign");
      expect(seen.a).toBe("a".repeat(10_000)); // read after the walk went on without it
      expect(seen.b).toBe("b".repeat(10_000));
      expect(report(second).members).toBe(5); // outer.tar, a.gz, a, b.gz, b: each once
      expect(readdirSync(temporaryDirectory)).toEqual([]);
    });
  });

  it("releases what it held for a wrapper that leaves as the other asks for more", async () => {
    // F2 leaves while F1, ahead, asks for the event past the disk bound on the same tick: the
    // walk goes on without F2 in the middle of its leave (review: that hold was never released).
    const files = { "a.bin": randomBytes(3000), "b.bin": randomBytes(3000), "c.bin": "c\n" };
    const artifact = await tarGzOf(files);
    await inTemporaryDirectory(async (temporaryDirectory) => {
      const settings = unpackOptionsSchema.parse(onDiskWithin12000(temporaryDirectory));
      const context = { signal: new AbortController().signal, deadline: undefined };
      const [one, two] = [1, 2].map(() => followWalk(artifact, settings, "key", context));
      const [first, second] = [one, two].map((walk) => walk?.events[Symbol.asyncIterator]());
      for (const _ of [1, 2]) await Promise.all([first?.next(), second?.next()]); // to outer.tar
      await first?.next(); // the tar's container event
      await first?.next(); // a.bin: outer.tar is kept (held) for `two`
      await Promise.all([two?.leave(), first?.next()]);
      while (!(await first?.next())?.done);
      await one?.leave();
      expect(readdirSync(temporaryDirectory)).toEqual([]);
    });
  });

  it("never holds a wrapper for a slower one at a member on disk: its deadline is its own", async () => {
    // The slow one holds each member: the fast one moves on (the member kept for the slow one).
    const options = { memoryLimitBytes: 4 };
    const eicar = createEicarScanner();
    const fast = defineScanner({
      name: "fast",
      scan: async (artifact, context) => {
        if (artifact.filename === "outer.tar.gz") await sleep(20); // the slow one walks first
        return eicar.scan(artifact, { signal: context.signal, deadline: context.deadline });
      },
    });
    const slow = defineScanner({
      name: "slow",
      scan: async (artifact, context) => {
        if (artifact.filename !== "outer.tar.gz") await sleep(150, undefined, context);
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const artifact = await archiveOfFive();
    const [detected, walked] = await Promise.all([
      createUnpackingScanner(fast, options).scan(artifact, { deadline: Date.now() + 400 }),
      createUnpackingScanner(slow, options).scan(artifact, { deadline: Date.now() + 10_000 }),
    ]);
    // Held at each member (150 ms), the fast one would pass its deadline before EICAR.
    expect(detected.verdict).toBe("malicious");
    expect(report(walked).members).toBe(7);
  });

  it("has removed the walk's members on disk when a wrapper answers at a detection", async () => {
    await inTemporaryDirectory(async (temporaryDirectory) => {
      const scanner = createUnpackingScanner(createEicarScanner(), {
        memoryLimitBytes: 4,
        temporaryDirectory,
      });
      const result = await scanner.scan(await archiveOfFive());
      expect(result.verdict).toBe("malicious");
      expect(readdirSync(temporaryDirectory)).toEqual([]); // not a moment later: at the answer
    });
  });

  it("gives every wrapper that answers every member once, whole, whatever their pace", async () => {
    // Random schedules: 2-4 wrappers, members in memory or on disk, random delays and aborts.
    await inTemporaryDirectory(async (temporaryDirectory) => {
      const problems: string[] = [];
      for (let seed = 1; seed <= 40; seed += 1) {
        const random = seeded(seed);
        const { artifact, contents } = await randomArchive(random);
        const options = { memoryLimitBytes: random() < 0.5 ? 4 : 1024, temporaryDirectory };
        const wrappers = Array.from({ length: 2 + Math.floor(random() * 3) }, (_, index) =>
          pacedWrapper(`w${index}`, random, contents, options),
        );
        for (const found of await Promise.all(wrappers.map((wrapper) => wrapper.scan(artifact))))
          problems.push(...found.map((problem) => `seed ${seed}: ${problem}`));
      }
      await sleep(50);
      expect(readdirSync(temporaryDirectory)).toEqual([]);
      expect(problems).toEqual([]);
    });
  });

  it("fails each wrapper with its own copy of the walk's failure, named by its own backend", async () => {
    // No size and a stream that fails: no look, and the walk fails as it reads the root.
    const bytes = artifactFromBytes(gzipSync(Buffer.from("x")), { filename: "notes.gz" });
    const failing: Artifact = {
      ...bytes,
      kind: bytes.kind,
      size: undefined,
      byteLength: () => bytes.byteLength(),
      bytes: (options) => bytes.bytes(options),
      stream: () => {
        throw new BackendUnavailableError({ message: "the disk went away" });
      },
    };
    const outcomes = await Promise.allSettled(
      ["one", "two"].map((name) =>
        createUnpackingScanner(
          defineScanner({
            name, // it never reads the artifact: the walk is what fails
            scan: async () => ({
              verdict: "benign",
              confidence: 1,
              metadata: { malware_family: "" },
            }),
          }),
        ).scan(failing),
      ),
    );
    const reasons = outcomes.map((outcome) => (outcome as PromiseRejectedResult).reason);
    expect(reasons.map((reason) => BackendUnavailableError.isInstance(reason))).toEqual([
      true,
      true,
    ]);
    expect(reasons.map((reason) => reason.scanner)).toEqual(["one", "two"]);
  });

  it("hands a wrapper on a walk of its own each event it did not have, as often as the walk yields it", async () => {
    // The same member twice (skipDuplicates off) and the same skip twice, around a member on
    // disk that a slower wrapper holds: the one ahead walks on its own from there.
    const corrupt = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8]);
    const tar = await tarWithRepeats([
      ["a.txt", Buffer.from("same content")],
      ["x.gz", corrupt],
      ["big.bin", randomBytes(5000)],
      ["a.txt", Buffer.from("same content")],
      ["x.gz", corrupt],
    ]);
    const artifact = artifactFromBytes(tar, { filename: "t.tar" });
    const options = { memoryLimitBytes: 1000, skipDuplicates: false };
    const benign = { verdict: "benign" as const, confidence: 1, metadata: { malware_family: "" } };
    const ahead = defineScanner({ name: "ahead", scan: async () => benign });
    const holder = defineScanner({
      name: "holder",
      scan: async (member) => {
        if (member.filename === "big.bin") await sleep(100);
        return benign;
      },
    });
    const counts = (
      await Promise.all([
        createUnpackingScanner(ahead, options).scan(artifact),
        createUnpackingScanner(holder, options).scan(artifact),
      ])
    ).map((result) => [report(result).members, report(result).skipped_count]);
    expect(counts).toEqual([
      [5, 2],
      [5, 2],
    ]);
  });

  it("does not share between wrappers with other limits", async () => {
    const store = vi.spyOn(MemberStore.prototype, "store");
    const artifact = await archiveOfFive();
    const [deep, shallow] = await Promise.all([
      createUnpackingScanner(quiet(recordingScanner("deep").scanner)).scan(artifact),
      createUnpackingScanner(quiet(recordingScanner("shallow").scanner), {
        limits: { maxDepth: 1 },
      }).scan(artifact),
    ]);
    expect(report(deep).members).toBe(7);
    expect(report(shallow).members).toBe(1);
    expect(report(shallow).skipped_by_code).toEqual({ "SKIPPED:LIMITS": 1 });
    expect(store).toHaveBeenCalledTimes(8);
  });
});

/** A benign scanner that records what it reads, slow (`delayMs`) at the root only. */
function slowAtRoot(name: string, delayMs: number) {
  const seen: Record<string, string> = {};
  let rootDone = Number.POSITIVE_INFINITY;
  const scanner = defineScanner({
    name,
    scan: async (artifact) => {
      const filename = artifact.filename ?? "";
      if (filename === "outer.tar.gz") await sleep(delayMs);
      seen[filename] = Buffer.from(await artifact.bytes()).toString("latin1");
      if (filename === "outer.tar.gz") rootDone = performance.now();
      return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    },
  });
  return { scanner, seen, rootDone: () => rootDone };
}

/**
 * Two wrappers (`options`) scanning one archive at once: a fast one, and one 150 ms slow at
 * the outer artifact; `fastDone` is when the fast one answered.
 */
async function fastBesideSlowOuter(options: UnpackOptions) {
  const fast = recordingScanner("fast");
  const slow = slowAtRoot("slow", 150);
  const artifact = await archiveOfFive();
  let fastDone = 0;
  const [first, second] = await Promise.all([
    createUnpackingScanner(quiet(fast.scanner), options)
      .scan(artifact)
      .finally(() => {
        fastDone = performance.now();
      }),
    createUnpackingScanner(slow.scanner, options).scan(artifact),
  ]);
  return { first, second, slow, fastDone };
}

/** `outer.tar.gz` of `files`. */
async function tarGzOf(files: Record<string, Uint8Array | string>): Promise<Artifact> {
  return artifactFromBytes(gzipSync(await tarOf(files)), { filename: "outer.tar.gz" });
}

/** Options with every member on disk, in `temporaryDirectory`, and maxMemberBytes 12,000. */
function onDiskWithin12000(temporaryDirectory: string): UnpackOptions {
  return { memoryLimitBytes: 4, temporaryDirectory, limits: { maxMemberBytes: 12_000 } };
}

/** A tar of `entries` in order, names repeated as given (tar-stream, as the extractor reads it). */
async function tarWithRepeats(entries: Array<[string, Uint8Array]>): Promise<Buffer> {
  const packer = pack();
  const chunks: Buffer[] = [];
  packer.on("data", (chunk) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve) => packer.on("end", () => resolve()));
  for (const [name, bytes] of entries)
    await new Promise<void>((resolve, reject) =>
      packer.entry({ name, size: bytes.length }, Buffer.from(bytes), (error) =>
        error ? reject(error) : resolve(),
      ),
    );
  packer.finalize();
  await ended;
  return Buffer.concat(chunks);
}

/** A xorshift random number generator in [0, 1) from `seed`. */
function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

/** `outer.tar.gz` of 1-6 text files, some gzipped; what each member name's content is. */
async function randomArchive(random: () => number) {
  const files: Record<string, Uint8Array | string> = {};
  const contents: Record<string, string[]> = { "outer.tar.gz": [], "outer.tar": [] };
  for (let index = 1; index <= 1 + Math.floor(random() * 6); index += 1) {
    const text = `content ${index} ${"y".repeat(Math.floor(random() * 40))}\n`;
    const zipped = random() < 0.3;
    files[`file-${index}.txt`] = zipped ? gzipSync(text) : text;
    contents[`file-${index}.txt`] = zipped ? [] : [text];
    if (zipped) contents.content = [...(contents.content ?? []), text];
  }
  const artifact = artifactFromBytes(gzipSync(await tarOf(files)), { filename: "outer.tar.gz" });
  return { artifact, contents };
}

/**
 * An unpacking wrapper slow at random (at the root, at each member), aborted at random; its
 * `scan` resolves the problems seen: a member missed, seen twice or read other than it is.
 */
function pacedWrapper(
  name: string,
  random: () => number,
  contents: Record<string, string[]>,
  options: UnpackOptions,
) {
  const [rootDelay, memberDelay] = [Math.floor(random() * 20), Math.floor(random() * 8)];
  const abortAt = random() < 0.2 ? Math.floor(random() * 30) : undefined;
  const read: Record<string, string[]> = {};
  const inner = defineScanner({
    name,
    scan: async (artifact, context) => {
      const filename = artifact.filename ?? "";
      const delay = filename === "outer.tar.gz" ? rootDelay : memberDelay;
      await sleep(delay, undefined, { signal: context.signal });
      const text = Buffer.from(await artifact.bytes()).toString("latin1");
      read[filename] = [...(read[filename] ?? []), text];
      return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    },
  });
  const scan = async (artifact: Artifact): Promise<string[]> => {
    const stop = new AbortController();
    if (abortAt !== undefined) setTimeout(() => stop.abort(), abortAt);
    try {
      await createUnpackingScanner(inner, options).scan(artifact, { signal: stop.signal });
    } catch (error) {
      return stop.signal.aborted ? [] : [`${name} failed: ${(error as Error).message}`];
    }
    return Object.entries(contents).flatMap(([member, texts]) => {
      const times = member === "content" ? texts.length : 1;
      const seen = read[member] ?? [];
      if (seen.length !== times)
        return [`${name} read ${member} ${seen.length} times, not ${times}`];
      const wrong = texts.filter((text) => !seen.includes(text));
      return wrong.length > 0 ? [`${name} read ${member} as ${JSON.stringify(seen)}`] : [];
    });
  };
  return { scan };
}

/** `scanner` with EICAR answered benign (so that a wrapper walks to the end). */
function quiet(scanner: Scanner): Scanner {
  return defineScanner({
    name: scanner.name,
    scan: async (artifact, context) => {
      await scanner.scan(artifact, { signal: context.signal, deadline: context.deadline });
      return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    },
  });
}
