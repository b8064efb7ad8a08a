import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { ArtifactTooLargeError, artifactFromStream } from "@engine/core";
import { describe, expect, it } from "vitest";
import { heldBodyMemoryBytes, holdBody } from "../../src/http/held-body.js";

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const streamed = (bytes: Buffer, pieces = 7) =>
  artifactFromStream(
    Readable.from(
      Array.from({ length: pieces }, (_, index) =>
        bytes.subarray(
          Math.floor((index * bytes.length) / pieces),
          Math.floor(((index + 1) * bytes.length) / pieces),
        ),
      ),
    ),
    { filename: "upload.bin" },
  );

describe("holdBody (the scan API's body, hashed by the engine)", () => {
  it("keeps a small body in memory with the sha256 it computed", async () => {
    const bytes = Buffer.from("a small upload");
    const held = await holdBody(
      streamed(bytes),
      { maxBytes: 2 ** 30 },
      new AbortController().signal,
    );
    expect(held.sha256).toBe(sha256(bytes));
    expect(held.artifact).toMatchObject({
      sha256: sha256(bytes),
      path: undefined,
      filename: "upload.bin",
    });
    expect(Buffer.from(await held.artifact.bytes())).toEqual(bytes);
    await held.dispose();
  });

  it("holds a body past the memory bound in a private temp file, removed by dispose", async () => {
    const bytes = Buffer.alloc(heldBodyMemoryBytes * 2 + 5, 7);
    const held = await holdBody(
      streamed(bytes, 33),
      { maxBytes: 2 ** 30 },
      new AbortController().signal,
    );
    const path = held.artifact.path as string;
    expect(held.artifact).toMatchObject({ sha256: sha256(bytes), size: bytes.length });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(Buffer.from(await held.artifact.bytes())).toEqual(bytes);
    await held.dispose();
    expect(existsSync(path)).toBe(false);
  });

  it("leaves no file behind when the body fails on the way (over its cap, or the client gone)", async () => {
    const failing = artifactFromStream(
      (async function* () {
        yield Buffer.alloc(heldBodyMemoryBytes + 1);
        throw new ArtifactTooLargeError({ message: "over the cap" });
      })(),
    );
    const directory = await mkdtemp(join(tmpdir(), "held-body-test-"));
    try {
      await expect(
        holdBody(
          failing,
          { maxBytes: 2 ** 30, temporaryDirectory: directory },
          new AbortController().signal,
        ),
      ).rejects.toBeInstanceOf(ArtifactTooLargeError);
      expect(await readdir(directory)).toEqual([]);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
