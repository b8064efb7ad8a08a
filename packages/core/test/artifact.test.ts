import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ArtifactTooLargeError,
  ArtifactUnavailableError,
  artifactFromBytes,
  artifactFromFile,
  artifactFromStream,
  artifactFromUrl,
  InvalidOptionsError,
  ScanAbortedError,
} from "../src/index.js";

async function collect(readable: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of readable) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-core-artifact-"));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("artifactFromBytes", () => {
  it("reads as bytes and as a stream, any number of times", async () => {
    const artifact = artifactFromBytes("hello", { filename: "a.txt", sha256: "A".repeat(64) });
    expect(artifact.kind).toBe("file");
    expect(artifact.size).toBe(5);
    expect(artifact.filename).toBe("a.txt");
    expect(artifact.sha256).toBe("a".repeat(64));
    expect(artifact.replayable).toBe(true);
    expect(Buffer.from(await artifact.bytes()).toString()).toBe("hello");
    expect((await collect(artifact.stream())).toString()).toBe("hello");
    expect((await collect(artifact.stream())).toString()).toBe("hello");
    expect(await artifact.byteLength()).toBe(5);
  });

  it("enforces maxBytes", async () => {
    const artifact = artifactFromBytes(Buffer.alloc(10));
    await expect(artifact.bytes({ maxBytes: 9 })).rejects.toBeInstanceOf(ArtifactTooLargeError);
    await expect(collect(artifact.stream({ maxBytes: 9 }))).rejects.toBeInstanceOf(
      ArtifactTooLargeError,
    );
    expect((await artifact.bytes({ maxBytes: 10 })).byteLength).toBe(10);
  });

  it.each([
    [{ sha256: "not hex" }],
    [{ size: -1 }],
    [{ size: 1.5 }],
    [{ filename: "" }],
    [{ colour: "red" }],
  ])("rejects invalid info %j with a typed error", (info) => {
    expect(() => artifactFromBytes("x", info as never)).toThrow(InvalidOptionsError);
  });

  it("rejects values that are not bytes", () => {
    expect(() => artifactFromBytes(42 as never)).toThrow(InvalidOptionsError);
  });
});

describe("artifactFromFile", () => {
  it("never blocks on a FIFO (a file swapped for one): the read fails at once, typed", async () => {
    const fifo = join(directory, "swapped.fifo");
    execFileSync("mkfifo", [fifo]);
    const artifact = artifactFromFile(fifo);
    await expect(artifact.bytes()).rejects.toThrow(/is not a regular file/);
    await expect(collect(artifact.stream())).rejects.toBeInstanceOf(ArtifactUnavailableError);
  });

  it("streams a file in chunks, exposes its path and size", async () => {
    const path = join(directory, "file.bin");
    const content = Buffer.alloc(300 * 1024, 7);
    await writeFile(path, content);
    const artifact = artifactFromFile(path);
    expect(artifact.path).toBe(path);
    expect(artifact.filename).toBe("file.bin");
    expect(artifact.size).toBeUndefined();
    expect(await artifact.byteLength()).toBe(content.length);
    const chunkSizes: number[] = [];
    for await (const chunk of artifact.stream()) chunkSizes.push((chunk as Buffer).length);
    expect(chunkSizes.length).toBeGreaterThan(1);
    expect(Math.max(...chunkSizes)).toBeLessThanOrEqual(64 * 1024);
    expect(Buffer.compare(Buffer.from(await artifact.bytes()), content)).toBe(0);
    await expect(artifact.bytes({ maxBytes: 1000 })).rejects.toBeInstanceOf(ArtifactTooLargeError);
  });

  it("fails reads of a missing file with ArtifactUnavailableError, not at construction", async () => {
    const artifact = artifactFromFile(join(directory, "missing"));
    await expect(artifact.bytes()).rejects.toBeInstanceOf(ArtifactUnavailableError);
    await expect(collect(artifact.stream())).rejects.toThrow(/does not exist/);
    await expect(artifact.byteLength()).rejects.toBeInstanceOf(ArtifactUnavailableError);
  });

  it("fails reads of a directory with ArtifactUnavailableError", async () => {
    await expect(artifactFromFile(directory).bytes()).rejects.toThrow(/is a directory/);
  });

  it("aborts a read with ScanAbortedError", async () => {
    const path = join(directory, "abort.bin");
    await writeFile(path, Buffer.alloc(1024 * 1024));
    const controller = new AbortController();
    controller.abort();
    await expect(
      artifactFromFile(path).bytes({ signal: controller.signal }),
    ).rejects.toBeInstanceOf(ScanAbortedError);
    await expect(
      collect(artifactFromFile(path).stream({ signal: controller.signal })),
    ).rejects.toBeInstanceOf(ScanAbortedError);
  });
});

describe("artifactFromStream", () => {
  it("reads a Node stream once and refuses a second read", async () => {
    const artifact = artifactFromStream(Readable.from([Buffer.from("ab"), Buffer.from("cd")]), {
      size: 4,
    });
    expect(artifact.replayable).toBe(false);
    expect(await artifact.byteLength()).toBe(4);
    expect(Buffer.from(await artifact.bytes()).toString()).toBe("abcd");
    await expect(artifact.bytes()).rejects.toBeInstanceOf(ArtifactUnavailableError);
  });

  it("reads web streams, async iterables and string chunks", async () => {
    const web = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("web"));
        controller.close();
      },
    });
    expect(Buffer.from(await artifactFromStream(web).bytes()).toString()).toBe("web");
    async function* generate() {
      yield "x";
      yield Buffer.from("y");
    }
    expect(Buffer.from(await artifactFromStream(generate()).bytes()).toString()).toBe("xy");
  });

  it("turns a failing source into ArtifactUnavailableError", async () => {
    const source = new Readable({
      read() {
        this.destroy(new Error("connection reset by peer"));
      },
    });
    await expect(artifactFromStream(source).bytes()).rejects.toThrow(/connection reset by peer/);
  });

  it("destroys a stalled source when the read is aborted", async () => {
    const source = new Readable({ read() {} });
    const controller = new AbortController();
    const reading = artifactFromStream(source).bytes({ signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(reading).rejects.toBeInstanceOf(ScanAbortedError);
    expect(source.destroyed).toBe(true);
  });

  it("stops a stream past maxBytes", async () => {
    const artifact = artifactFromStream(Readable.from([Buffer.alloc(6), Buffer.alloc(6)]));
    await expect(artifact.bytes({ maxBytes: 10 })).rejects.toBeInstanceOf(ArtifactTooLargeError);
  });

  it.each([[Buffer.from("bytes")], ["a string"], [42], [null]])(
    "rejects %j with a typed error",
    (value) => {
      expect(() => artifactFromStream(value as never)).toThrow(InvalidOptionsError);
    },
  );
});

describe("artifactFromUrl", () => {
  it("has the URL text as content, as the SDK does", async () => {
    const artifact = artifactFromUrl("https://example.com/a?b=c");
    expect(artifact.kind).toBe("url");
    expect(Buffer.from(await artifact.bytes()).toString()).toBe("https://example.com/a?b=c");
    expect(artifactFromUrl(new URL("http://example.com/")).size).toBe("http://example.com/".length);
  });

  it.each([["not a url"], ["ftp://example.com/"], ["javascript:alert(1)"]])("rejects %s", (url) => {
    expect(() => artifactFromUrl(url)).toThrow(InvalidOptionsError);
  });
});

describe("a stream source's typed errors", () => {
  it("keep their type (a size limit stays ArtifactTooLargeError), other failures become ArtifactUnavailableError", async () => {
    async function* limited() {
      yield Buffer.from("abc");
      throw new ArtifactTooLargeError({ message: "over the cap" });
    }
    await expect(artifactFromStream(limited()).bytes()).rejects.toBeInstanceOf(
      ArtifactTooLargeError,
    );
    async function* broken() {
      yield Buffer.from("abc");
      throw new Error("socket hang up");
    }
    await expect(artifactFromStream(broken()).bytes()).rejects.toBeInstanceOf(
      ArtifactUnavailableError,
    );
  });
});
