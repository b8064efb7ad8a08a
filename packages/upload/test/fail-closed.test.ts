// The failure paths an adversarial review found open, each kept as a regression test: a
// storage stream failing between writes, scanners outside the contract, a verdict on a
// prefix, a stalled body, the deadline during the commit, a sink whose discard throws, and
// listeners left on the scanner's feed.
import { Writable } from "node:stream";
import { createEicarScanner, eicarBytes, type Scanner } from "@engine/core";
import { describe, expect, it } from "vitest";
import {
  createUploadGuard,
  memoryStorage,
  type StorageSink,
  type UploadGuardOptions,
  type UploadOutcome,
} from "../src/index.js";

/** Posts `files` (name -> content) through the guard, as a browser's form would be. */
async function post(options: UploadGuardOptions, files: Record<string, Uint8Array | string>) {
  const form = new FormData();
  for (const [name, content] of Object.entries(files))
    form.append(
      name,
      new Blob([typeof content === "string" ? content : new Uint8Array(content)]),
      `${name}.txt`,
    );
  const request = new Request("http://localhost/upload", { method: "POST", body: form });
  return createUploadGuard(options).handle({
    headers: Object.fromEntries(request.headers),
    body: request.body as ReadableStream<Uint8Array>,
  });
}

const codeOf = (outcome: UploadOutcome) => (outcome.ok ? "ok" : outcome.problem.code);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bigText = (bytes: number, tail = "") => `${"x".repeat(bytes)}${tail}`;

/** A raw scanner (not built by defineScanner) doing `scan`. */
const raw = (scan: Scanner["scan"]): Scanner => ({ name: "raw", scan }) as Scanner;

describe("fail closed", () => {
  it("refuses (500 storage-failed) when a storage stream fails between writes, without crashing", async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on("uncaughtException", onUncaught);
    try {
      let writes = 0;
      const failing: StorageSink = {
        open: () => {
          const stream: Writable = new Writable({
            write(_chunk, _encoding, callback) {
              writes += 1;
              callback();
              // A disk that fills up: the error comes later, between two writes.
              if (writes === 3) setImmediate(() => stream.destroy(new Error("ENOSPC")));
            },
          });
          return {
            stream,
            commit: async () => ({ kind: "x", id: "x", size: 0 }),
            discard: async () => {},
          };
        },
      };
      const boundary = "slow";
      async function* slowBody() {
        yield Buffer.from(
          `--${boundary}\r\ncontent-disposition: form-data; name="a"; filename="a.txt"\r\n\r\n`,
        );
        for (let chunk = 0; chunk < 40; chunk += 1) {
          yield Buffer.alloc(64 * 1024, 0x61);
          await sleep(2);
        }
        yield Buffer.from(`\r\n--${boundary}--\r\n`);
      }
      const outcome = await createUploadGuard({
        scanner: createEicarScanner(),
        storage: failing,
      }).handle({
        headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
        body: slowBody(),
      });
      expect(codeOf(outcome)).toBe("storage-failed");
      await sleep(20);
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
    }
  });

  it("never passes a verdict given after reading only a prefix, however late it comes", async () => {
    const storage = memoryStorage();
    const prefixThenWait = raw(async (artifact) => {
      for await (const _ of artifact.stream()) break;
      await sleep(150);
      return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    });
    const outcome = await post(
      { scanner: prefixThenWait, storage },
      { a: bigText(2_000_000, eicarBytes().toString()) },
    );
    expect(codeOf(outcome)).toBe("not-inspectable");
    expect(storage.files.size).toBe(0);
  });

  it("never passes a scanner that resolves undefined or rejects with undefined", async () => {
    const storage = memoryStorage();
    const resolvesNothing = raw(async () => undefined as never);
    const rejectsNothing = raw(() => Promise.reject(undefined));
    expect(codeOf(await post({ scanner: resolvesNothing, storage }, { a: "x" }))).toBe(
      "scanner-unavailable",
    );
    expect(codeOf(await post({ scanner: rejectsNothing, storage }, { a: "x" }))).toBe(
      "scanner-unavailable",
    );
    expect(storage.files.size).toBe(0);
  });

  it("answers scan-timeout at the deadline when the body stalls mid-file", async () => {
    const boundary = "stall";
    const head = `--${boundary}\r\ncontent-disposition: form-data; name="a"; filename="a.txt"\r\n\r\n`;
    async function* stalled() {
      yield Buffer.from(head);
      yield Buffer.alloc(100_000, 0x61);
      await sleep(60_000);
    }
    const started = Date.now();
    const outcome = await createUploadGuard({
      scanner: createEicarScanner(),
      storage: memoryStorage(),
      timeoutMs: 300,
    }).handle({
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body: stalled(),
    });
    expect(codeOf(outcome)).toBe("scan-timeout");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(outcome.ok ? false : outcome.bodyUnread).toBe(true);
  });

  it("refuses and keeps nothing when the deadline passes during the commit", async () => {
    const storage = memoryStorage();
    const slowCommit: StorageSink = {
      async open(info) {
        const writer = await storage.open(info);
        return {
          ...writer,
          stream: writer.stream,
          async commit() {
            await sleep(600);
            return writer.commit();
          },
        };
      },
    };
    const outcome = await post(
      { scanner: createEicarScanner(), storage: slowCommit, timeoutMs: 300 },
      { a: "x" },
    );
    expect(codeOf(outcome)).toBe("scan-timeout");
    expect(storage.files.size).toBe(0);
  });

  it("still answers with a problem when a sink's discard throws", async () => {
    const storage = memoryStorage();
    const throwingDiscard: StorageSink = {
      async open(info) {
        const writer = await storage.open(info);
        return {
          ...writer,
          stream: writer.stream,
          discard: () => Promise.reject(new Error("S3 DeleteObject denied")),
        };
      },
    };
    const outcome = await post(
      { scanner: createEicarScanner(), storage: throwingDiscard },
      { a: "fine", b: eicarBytes() },
    );
    expect(codeOf(outcome)).toBe("malicious");
    expect(JSON.stringify(outcome.ok ? {} : outcome.problem)).not.toContain("S3");
  });

  it("answers the malware before a limit hit after it", async () => {
    const outcome = await post(
      { scanner: createEicarScanner(), storage: memoryStorage(), limits: { fileBytes: 4096 } },
      { a: eicarBytes(), b: bigText(10_000) },
    );
    expect(codeOf(outcome)).toBe("malicious");
  });

  it("leaves no listeners on the scanner's feed while a slow scanner reads a large file", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      const slow = raw(async (artifact) => {
        for await (const _ of artifact.stream()) await sleep(1);
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      });
      const outcome = await post(
        { scanner: slow, storage: memoryStorage() },
        { a: bigText(3_000_000) },
      );
      expect(codeOf(outcome)).toBe("ok");
      await sleep(10);
      expect(warnings.filter((warning) => warning.name === "MaxListenersExceededWarning")).toEqual(
        [],
      );
    } finally {
      process.off("warning", onWarning);
    }
  });
});
