import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { brotliCompressSync, deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import { ArtifactTooLargeError, ArtifactUnavailableError, ScanTimeoutError } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ArtifactFetcher,
  type FetchedArtifact,
  type FetchOptions,
  type FetchPolicy,
} from "../../src/net/artifact-fetcher.js";

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

/** EICAR (a few times over, to exercise the decoders) under each content coding a server may send. */
const eicarText = Buffer.from(
  "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*",
);
const codedBodies: Record<string, { coding: string; body: Buffer }> = {
  "/gzip": { coding: "gzip", body: gzipSync(eicarText) },
  "/deflate": { coding: "deflate", body: deflateSync(eicarText) },
  "/deflate-raw": { coding: "deflate", body: deflateRawSync(eicarText) },
  "/br": { coding: "br", body: brotliCompressSync(eicarText) },
  "/gzip-then-br": { coding: "gzip, br", body: brotliCompressSync(gzipSync(eicarText)) },
  "/identity": { coding: "identity", body: eicarText },
  "/compress": { coding: "compress", body: eicarText },
  "/zstd": { coding: "zstd", body: eicarText },
  "/bomb": { coding: "gzip", body: gzipSync(Buffer.alloc(64 * 1024 * 1024)) },
  "/broken": { coding: "gzip", body: Buffer.from("not gzip at all") },
};

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
    const coded = codedBodies[url.pathname];
    if (coded)
      return void response
        .writeHead(200, { "content-encoding": coded.coding, "content-length": coded.body.length })
        .end(coded.body);
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

describe("every byte is read one way, as standard clients read it (second audit, item 2)", () => {
  const accepted = { ...loopbackAllowed, maxBytes: 1024 * 1024 };
  it("asks for the identity coding, and decodes gzip, deflate (zlib or raw) and br as fetch does", async () => {
    let askedFor: string | undefined;
    const asking = createServer((request, response) => {
      askedFor = request.headers["accept-encoding"];
      response.writeHead(200, { "content-length": eicarText.length }).end(eicarText);
    });
    await new Promise<void>((resolve) => asking.listen(0, "127.0.0.1", resolve));
    const { port: askingPort } = asking.address() as { port: number };
    await (
      await fetchArtifact(`http://127.0.0.1:${askingPort}/x`, { ...accepted, signal: signal() })
    ).dispose();
    asking.close();
    expect(askedFor).toBe("identity");
    for (const path of ["/gzip", "/deflate", "/deflate-raw", "/br", "/gzip-then-br", "/identity"]) {
      const fetched = await fetchArtifact(`http://127.0.0.1:${port}${path}`, {
        ...accepted,
        signal: signal(),
        expectedSha256: createHash("sha256").update(eicarText).digest("hex"),
      });
      expect(Buffer.from(await fetched.artifact.bytes()).equals(eicarText), path).toBe(true);
      await fetched.dispose();
    }
  });

  it("refuses codings it does not decode, bodies that do not decode, and bombs past the cap", async () => {
    for (const path of ["/compress", "/zstd", "/broken"])
      await expect(
        fetchArtifact(`http://127.0.0.1:${port}${path}`, { ...accepted, signal: signal() }),
        path,
      ).rejects.toBeInstanceOf(ArtifactUnavailableError);
    // 64 MiB of zeros in a 64 KB gzip: refused at the 1 MiB cap, not inflated.
    await expect(
      fetchArtifact(`http://127.0.0.1:${port}/bomb`, { ...accepted, signal: signal() }),
    ).rejects.toBeInstanceOf(ArtifactTooLargeError);
  });

  it("reads data: URIs as WHATWG fetch does: any case and spacing of base64, escapes inside it, invalid base64 refused", async () => {
    const base64 = eicarText.toString("base64");
    const escaped = `${base64.slice(0, 8)}%${base64.charCodeAt(8).toString(16)}${base64.slice(9)}`;
    for (const uri of [
      `data:;BASE64,${base64}`,
      `data:; base64,${base64}`,
      `data:application/octet-stream;Base64,${base64}`,
      `data:;base64,${escaped}`,
      `data:;base64,${base64.slice(0, 20)} \n${base64.slice(20)}`,
      `DATA:;base64,${base64}`,
      `data:,${encodeURIComponent(eicarText.toString("latin1"))}`,
    ]) {
      const fetched = await fetchArtifact(uri, { ...accepted, signal: signal() });
      expect(Buffer.from(await fetched.artifact.bytes()).equals(eicarText), uri).toBe(true);
      await fetched.dispose();
    }
    for (const uri of ["data:;base64,!!!!****", "data:;base64,Q", "data:;base64,QQ=", "data:"])
      await expect(
        fetchArtifact(uri, { ...accepted, signal: signal() }),
        uri,
      ).rejects.toBeInstanceOf(ArtifactUnavailableError);
  });
});
