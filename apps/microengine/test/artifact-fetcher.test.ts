import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ArtifactTooLargeError, ArtifactUnavailableError, ScanTimeoutError } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ArtifactFetcher,
  type FetchedArtifact,
  type FetchOptions,
  type FetchPolicy,
} from "../src/artifact-fetcher.js";

/** One download with a fetcher of its own, closed with the artifact (or on failure). */
async function fetchArtifact(
  uri: string,
  options: FetchPolicy & FetchOptions,
): Promise<FetchedArtifact> {
  const fetcher = new ArtifactFetcher(options);
  try {
    const fetched = await fetcher.fetch(uri, options);
    return {
      ...fetched,
      dispose: async () => {
        await fetched.dispose();
        await fetcher.close();
      },
    };
  } catch (error) {
    await fetcher.close();
    throw error;
  }
}

let server: Server;
let port: number;
const payload = Buffer.from("artifact content for the fetcher tests");
beforeAll(async () => {
  server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://x");
    if (url.pathname === "/file")
      return void response.writeHead(200, { "content-length": payload.length }).end(payload);
    if (url.pathname === "/big-declared")
      return void response.writeHead(200, { "content-length": 10_000 }).end(Buffer.alloc(10_000));
    if (url.pathname === "/big-chunked") {
      response.writeHead(200);
      for (let index = 0; index < 10; index += 1) response.write(Buffer.alloc(1000));
      return void response.end();
    }
    if (url.pathname === "/to-other")
      return void response.writeHead(302, { location: `http://127.0.0.2:${port}/file` }).end();
    if (url.pathname === "/to-unlisted")
      return void response.writeHead(302, { location: `http://localhost:${port}/file` }).end();
    if (url.pathname === "/stall") {
      response.writeHead(200, { "content-length": 100 });
      response.write("partial");
      return; // never ends
    }
    response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const loopbackAllowed = {
  allowedHosts: ["127.0.0.1"],
  allowPrivateAddresses: true,
  allowFileUris: false,
  maxBytes: 1000,
};
const signal = () => AbortSignal.timeout(5_000);

describe("fetchArtifact", () => {
  it("downloads an allowed artifact to a temp file, with its sha256, and deletes it on dispose", async () => {
    const sha256 = createHash("sha256").update(payload).digest("hex");
    const fetched = await fetchArtifact(`http://127.0.0.1:${port}/file`, {
      ...loopbackAllowed,
      memoryLimitBytes: 0,
      signal: signal(),
      expectedSha256: sha256,
    });
    expect(fetched.sha256).toBe(sha256);
    expect(Buffer.from(await fetched.artifact.bytes()).equals(payload)).toBe(true);
    const path = fetched.artifact.path as string;
    expect(path).toMatch(/engine-artifacts-/);
    await fetched.dispose();
    await expect(readdir(dirname(path))).rejects.toThrow();
  });

  it("keeps a small artifact of known size in memory", async () => {
    const fetched = await fetchArtifact(`http://127.0.0.1:${port}/file`, {
      ...loopbackAllowed,
      signal: signal(),
    });
    expect(fetched.artifact.path).toBeUndefined();
    expect(Buffer.from(await fetched.artifact.bytes()).equals(payload)).toBe(true);
    await fetched.dispose();
  });

  it("refuses a host that is not allowed", async () => {
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/file`, {
        ...loopbackAllowed,
        allowedHosts: [],
        signal: signal(),
      }),
    ).rejects.toThrow(/host 127.0.0.1 is not in ARTIFACT_ALLOWED_HOSTS/);
  });

  it("refuses loopback and private addresses unless explicitly allowed", async () => {
    const policy = {
      ...loopbackAllowed,
      allowedHosts: ["127.0.0.1", "localhost"],
      allowPrivateAddresses: false,
    };
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/file`, { ...policy, signal: signal() }),
    ).rejects.toThrow(/127.0.0.1: the host is a private, loopback, link-local or reserved address/);
    await expect(
      fetchArtifact(`http://localhost:${port}/file`, { ...policy, signal: signal() }),
    ).rejects.toThrow(/resolves only to private addresses/);
  });

  it("checks every redirect: a redirect to a private address or an unlisted host is refused", async () => {
    const staged = {
      ...loopbackAllowed,
      allowedHosts: ["127.0.0.1", "127.0.0.2"],
      allowPrivateAddresses: false,
      isBlockedAddress: (address: string) => address === "127.0.0.2",
    };
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/to-other`, { ...staged, signal: signal() }),
    ).rejects.toThrow(/127.0.0.2: the host is a private/);
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/to-unlisted`, {
        ...loopbackAllowed,
        signal: signal(),
      }),
    ).rejects.toThrow(/host localhost is not in/);
  });

  it("enforces the size cap with and without Content-Length, leaving no temp file behind", async () => {
    // A private parent directory: other test files download at the same time into /tmp.
    const parent = await mkdtemp(join(tmpdir(), "engine-fetcher-cap-"));
    try {
      const policy = { ...loopbackAllowed, temporaryDirectory: parent };
      await expect(
        fetchArtifact(`http://127.0.0.1:${port}/big-declared`, { ...policy, signal: signal() }),
      ).rejects.toBeInstanceOf(ArtifactTooLargeError);
      await expect(
        fetchArtifact(`http://127.0.0.1:${port}/big-chunked`, { ...policy, signal: signal() }),
      ).rejects.toBeInstanceOf(ArtifactTooLargeError);
      expect(await readdir(parent)).toEqual([]);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  });

  it("refuses a sha256 mismatch", async () => {
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/file`, {
        ...loopbackAllowed,
        signal: signal(),
        expectedSha256: "0".repeat(64),
      }),
    ).rejects.toThrow(/sha256 mismatch/);
  });

  it("gives up on a stalling server at the deadline", async () => {
    const started = Date.now();
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/stall`, {
        ...loopbackAllowed,
        signal: AbortSignal.timeout(300),
      }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it("reads data: URIs and refuses file: URIs unless allowed", async () => {
    const fetched = await fetchArtifact(`data:text/plain;base64,${payload.toString("base64")}`, {
      ...loopbackAllowed,
      signal: signal(),
    });
    expect(Buffer.from(await fetched.artifact.bytes()).equals(payload)).toBe(true);
    expect(fetched.artifact.mimetype).toBe("text/plain");
    await fetched.dispose();
    await expect(
      fetchArtifact("data:,too%20large".padEnd(5000, "x"), {
        ...loopbackAllowed,
        signal: signal(),
      }),
    ).rejects.toBeInstanceOf(ArtifactTooLargeError);
    await expect(
      fetchArtifact("file:///etc/passwd", { ...loopbackAllowed, signal: signal() }),
    ).rejects.toBeInstanceOf(ArtifactUnavailableError);
  });
});

describe("ArtifactFetcher", () => {
  it("makes its temp directory again after it was removed under it", async () => {
    const root = await mkdtemp(join(tmpdir(), "engine-fetcher-root-"));
    const fetcher = new ArtifactFetcher({
      allowedHosts: [],
      allowPrivateAddresses: false,
      allowFileUris: false,
      maxBytes: 8 * 1024 * 1024,
      temporaryDirectory: root,
      memoryLimitBytes: 16, // every artifact goes through a temp file
    });
    const uri = `data:application/octet-stream;base64,${Buffer.alloc(4096, 7).toString("base64")}`;
    const fetch = () => fetcher.fetch(uri, { signal: AbortSignal.timeout(5000) });
    try {
      await (await fetch()).dispose();
      for (const entry of await readdir(root)) await rm(join(root, entry), { recursive: true });
      await expect(fetch()).rejects.toBeInstanceOf(ArtifactUnavailableError);
      const again = await fetch();
      expect(again.bytes).toBe(4096);
      await again.dispose();
    } finally {
      await fetcher.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
