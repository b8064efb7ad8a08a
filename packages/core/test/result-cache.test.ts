import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  artifactFromBytes,
  artifactFromFile,
  artifactFromStream,
  createCachedScanner,
  createEicarScanner,
  createMemoryResultStore,
  defineScanner,
  type ResultCacheOutcome,
  type ResultCacheStore,
  type ScanResult,
} from "../src/index.js";
import { describeScanner } from "../src/testing/index.js";

// The cache keeps the contract: abort, deadline, lifecycle, concurrency, streams.
describeScanner("cached eicar", () =>
  createCachedScanner(createEicarScanner(), { store: createMemoryResultStore() }),
);

/** A scanner that counts its scans and answers what `answer` says for the content. */
function countingScanner(answer: (text: string) => ScanResult) {
  const state = { scans: 0, signaturesVersion: "v1" };
  const scanner = defineScanner({
    name: "counting",
    scan: async (artifact) => {
      state.scans += 1;
      return answer(Buffer.from(await artifact.bytes()).toString());
    },
  });
  Object.defineProperty(scanner, "signaturesVersion", { get: () => state.signaturesVersion });
  return { scanner, state };
}

const verdictOf = (text: string): ScanResult =>
  text.includes("EVIL")
    ? { verdict: "malicious", confidence: 1, metadata: { malware_family: "Evil" } }
    : text.includes("LOCKED")
      ? {
          verdict: "unknown",
          confidence: 0,
          metadata: { malware_family: "", comments: ["SKIPPED:ENCRYPTED"] },
        }
      : { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };

function cached(store: ResultCacheStore = createMemoryResultStore(), extra = {}) {
  const { scanner, state } = countingScanner(verdictOf);
  const outcomes: ResultCacheOutcome[] = [];
  const wrapped = createCachedScanner(scanner, {
    store,
    onLookup: (outcome) => outcomes.push(outcome),
    ...extra,
  });
  return { wrapped, state, outcomes };
}

describe("createCachedScanner", () => {
  it("answers a repeat from the cache, says so, and scans new content", async () => {
    const { wrapped, state, outcomes } = cached();
    const first = await wrapped.scan(artifactFromBytes("EVIL one"));
    const again = await wrapped.scan(artifactFromBytes("EVIL one"));
    await wrapped.scan(artifactFromBytes("EVIL two"));
    expect(state.scans).toBe(2);
    expect(outcomes).toEqual(["miss", "hit", "miss"]);
    expect(first.metadata.cache).toBeUndefined();
    expect(again.verdict).toBe("malicious");
    expect(again.metadata.cache).toEqual({
      hit: true,
      stored_at: expect.stringMatching(/^\d{4}-/),
    });
  });

  it("misses at once when the signatures version changes", async () => {
    const { wrapped, state } = cached();
    await wrapped.scan(artifactFromBytes("hello"));
    state.signaturesVersion = "v2";
    await wrapped.scan(artifactFromBytes("hello"));
    expect(state.scans).toBe(2);
  });

  it("keys on what a backend sees besides the bytes: another filename or MIME type is another entry", async () => {
    const { wrapped, outcomes } = cached();
    await wrapped.scan(artifactFromBytes("EVIL", { mimetype: "text/plain" }));
    await wrapped.scan(artifactFromBytes("EVIL", { mimetype: "application/x-msdownload" }));
    await wrapped.scan(artifactFromBytes("EVIL", { filename: "a.exe" }));
    await wrapped.scan(artifactFromBytes("EVIL", { mimetype: "text/plain" }));
    expect(outcomes).toEqual(["miss", "miss", "miss", "hit"]);
    // A local path is seen too (YARA's `filepath`): the same bytes in two files are two entries.
    const directory = await mkdtemp(join(tmpdir(), "engine-cache-paths-"));
    try {
      for (const name of ["one", "two"]) await writeFile(join(directory, name), "EVIL");
      outcomes.length = 0;
      for (const name of ["one", "two", "one"])
        await wrapped.scan(artifactFromFile(join(directory, name), { filename: "same" }));
      expect(outcomes).toEqual(["miss", "miss", "hit"]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("does not store an answer when the signatures changed during its scan, nor while paused", async () => {
    const { scanner, state } = countingScanner(verdictOf);
    const slow = defineScanner({
      name: "counting",
      scan: async (artifact, context) => {
        const answer = await scanner.scan(artifact, { signal: context.signal });
        state.signaturesVersion = "v2"; // a reload finished while this scan ran
        return answer;
      },
    });
    Object.defineProperty(slow, "signaturesVersion", { get: () => state.signaturesVersion });
    const outcomes: ResultCacheOutcome[] = [];
    const wrapped = createCachedScanner(slow, {
      store: createMemoryResultStore(),
      onLookup: (outcome) => outcomes.push(outcome),
    });
    await wrapped.scan(artifactFromBytes("hello")); // key v1, answered after v2: not stored
    state.signaturesVersion = "v2";
    await wrapped.scan(artifactFromBytes("hello"));
    expect(outcomes).toEqual(["miss", "miss"]);
    let paused = true;
    const pausing = cached(createMemoryResultStore(), { paused: () => paused });
    await pausing.wrapped.scan(artifactFromBytes("hello"));
    paused = false;
    await pausing.wrapped.scan(artifactFromBytes("hello"));
    await pausing.wrapped.scan(artifactFromBytes("hello"));
    expect(pausing.outcomes).toEqual(["bypass", "miss", "hit"]);
  });

  it("never stores unknown, inconclusive or failed answers", async () => {
    const { wrapped, state, outcomes } = cached();
    await wrapped.scan(artifactFromBytes("LOCKED"));
    await wrapped.scan(artifactFromBytes("LOCKED"));
    expect(state.scans).toBe(2);
    const inconclusive: ScanResult = {
      verdict: "malicious",
      confidence: 1,
      metadata: {
        malware_family: "X",
        backends: [
          { name: "a", verdict: "malicious", confidence: 1, malware_family: "X", duration_ms: 1 },
          {
            name: "b",
            verdict: "unknown",
            confidence: 0,
            malware_family: "",
            duration_ms: 1,
            error_code: "SCAN_TIMEOUT",
          },
        ],
      },
    };
    let scans = 0;
    const multi = createCachedScanner(
      defineScanner({
        name: "multi",
        scan: async () => {
          scans += 1;
          return inconclusive;
        },
      }),
      { store: createMemoryResultStore() },
    );
    await multi.scan(artifactFromBytes("x"));
    await multi.scan(artifactFromBytes("x"));
    expect(scans).toBe(2);
    let failures = 0;
    const failing = createCachedScanner(
      defineScanner({
        name: "failing",
        scan: async () => {
          failures += 1;
          throw new Error("down");
        },
      }),
      { store: createMemoryResultStore() },
    );
    await expect(failing.scan(artifactFromBytes("x"))).rejects.toThrow();
    await expect(failing.scan(artifactFromBytes("x"))).rejects.toThrow();
    expect(failures).toBe(2);
    expect(outcomes).toEqual(["miss", "miss"]);
  });

  it("hashes the content itself: a declared sha256 of another file never borrows its answer", async () => {
    const { wrapped, state } = cached();
    const benign = artifactFromBytes("hello");
    await wrapped.scan(benign);
    const liar = artifactFromBytes("EVIL", {
      sha256: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824", // sha256("hello")
    });
    expect((await wrapped.scan(liar)).verdict).toBe("malicious");
    expect(state.scans).toBe(2);
  });

  it("scans a read-once stream without the cache, unless its sha256 is trusted", async () => {
    const { wrapped, outcomes } = cached();
    const stream = () => artifactFromStream(Readable.from([Buffer.from("EVIL")]));
    expect((await wrapped.scan(stream())).verdict).toBe("malicious");
    expect(outcomes).toEqual(["bypass"]);
    const trusting = cached(createMemoryResultStore(), { trustDeclaredSha256: true });
    const declared = () =>
      artifactFromStream(Readable.from([Buffer.from("EVIL")]), { sha256: "a".repeat(64) });
    await trusting.wrapped.scan(declared());
    await trusting.wrapped.scan(declared());
    expect(trusting.outcomes).toEqual(["miss", "hit"]);
  });

  it("answers when the store fails, hangs or holds garbage", async () => {
    const broken: ResultCacheStore = {
      get: async () => {
        throw new Error("redis down");
      },
      set: async () => {
        throw new Error("redis down");
      },
    };
    expect((await cached(broken).wrapped.scan(artifactFromBytes("EVIL"))).verdict).toBe(
      "malicious",
    );
    const hanging: ResultCacheStore = {
      get: () => new Promise(() => {}),
      set: () => new Promise(() => {}),
    };
    const started = Date.now();
    const slow = cached(hanging, { storeTimeoutMs: 50 });
    expect((await slow.wrapped.scan(artifactFromBytes("EVIL"))).verdict).toBe("malicious");
    expect(Date.now() - started).toBeLessThan(1_000);
    const garbage: ResultCacheStore = {
      get: async () => ({ result: { verdict: "benign" }, stored_at: "x" }),
      set: async () => {},
    };
    const poisoned = cached(garbage);
    expect((await poisoned.wrapped.scan(artifactFromBytes("EVIL"))).verdict).toBe("malicious");
    expect(poisoned.outcomes).toEqual(["miss"]);
  });
});

describe("createCachedScanner when the version cannot be read", () => {
  it("scans without the cache instead of failing the scan", async () => {
    const outcomes: ResultCacheOutcome[] = [];
    const wrapped = createCachedScanner(createEicarScanner(), {
      store: createMemoryResultStore(),
      versionKey: async () => {
        throw new Error("clamd is away");
      },
      onLookup: (outcome) => outcomes.push(outcome),
    });
    expect((await wrapped.scan(artifactFromBytes("hello"))).verdict).toBe("benign");
    expect(outcomes).toEqual(["bypass"]);
  });
});

describe("createMemoryResultStore", () => {
  it("is bounded by bytes (least recently used out first) and expires entries", async () => {
    const store = createMemoryResultStore({ maxBytes: 200 });
    await store.set("a", { text: "x".repeat(80) }, 60_000);
    await store.set("b", { text: "y".repeat(80) }, 60_000);
    await store.set("c", { text: "z".repeat(80) }, 60_000);
    expect(await store.get("a")).toBeUndefined();
    expect(await store.get("c")).toEqual({ text: "z".repeat(80) });
    await store.set("huge", { text: "h".repeat(500) }, 60_000);
    expect(await store.get("huge")).toBeUndefined();
    await store.set("short", { ok: true }, 20);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(await store.get("short")).toBeUndefined();
  });
});
