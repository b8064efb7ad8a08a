import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  type Artifact,
  ArtifactTooLargeError,
  ArtifactUnavailableError,
  artifactFromBytes,
  artifactFromFile,
  BackendUnavailableError,
  defineScanner,
  InvalidOptionsError,
  isScanContext,
  ProtocolError,
  ScanAbortedError,
  ScanTimeoutError,
} from "@engine/core";
import { stalledStreamArtifact } from "@engine/core/testing";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ClamdClient, checkClamdAlerts, createClamavScanner } from "../src/index.js";
import { decodeInstreamFrames } from "../src/instream-framing.js";
import { answeringSessions, type FakeClamd, startFakeClamd } from "./fake-clamd.js";

/** These scripted clamds speak INSTREAM: bytes in memory are streamed, not passed as memory files. */
const streamed = { memoryFileMaxBytes: 0 } as const;

const fakes: FakeClamd[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake[Symbol.asyncDispose]();
});
async function fake(behaviour: Parameters<typeof startFakeClamd>[0]): Promise<FakeClamd> {
  const started = await startFakeClamd(behaviour);
  fakes.push(started);
  return started;
}

/** Answers IDSESSION + INSTREAM uploads with `reply` once each upload is complete. */
function answering(reply: (request: number) => string) {
  const states = new WeakMap<Socket, { request: number; consumed: number }>();
  return (socket: Socket, received: Buffer) => {
    const state = states.get(socket) ?? { request: 0, consumed: 0 };
    states.set(socket, state);
    let rest = received.subarray(state.consumed);
    if (rest.subarray(0, 11).toString() === "zIDSESSION\0") {
      state.consumed += 11;
      rest = rest.subarray(11);
    }
    while (rest.subarray(0, 10).toString() === "zINSTREAM\0") {
      const upload = decodeInstreamFrames(rest.subarray(10));
      if (!upload) return;
      state.request += 1;
      state.consumed += rest.length - upload.rest.length;
      socket.write(`${state.request}: ${reply(state.request)}\0`);
      rest = Buffer.from(upload.rest.buffer, upload.rest.byteOffset, upload.rest.byteLength);
    }
  };
}

describe("the scanner's name on its errors", () => {
  it("is the name it was given, not a name the client gives itself", async () => {
    const scanner = createClamavScanner({ name: "clam-b", socket: "/nonexistent/clamd.sock" });
    const error = await scanner.scan(artifactFromBytes("x")).catch((caught: unknown) => caught);
    expect(BackendUnavailableError.isInstance(error)).toBe(true);
    expect((error as BackendUnavailableError).scanner).toBe("clam-b");
    await scanner.close?.();
  });
});

describe("ClamdClient against scripted faults", () => {
  it("fails fast with BackendUnavailableError when nothing listens", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-nothing-"));
    try {
      const started = Date.now();
      const client = new ClamdClient({ socket: join(directory, "missing.sock") });
      await expect(client.ping()).rejects.toBeInstanceOf(BackendUnavailableError);
      await expect(client.scan(artifactFromBytes("x"))).rejects.toThrow(
        /cannot connect to clamd at unix:/,
      );
      const tcp = new ClamdClient({ host: "127.0.0.1", port: 1 });
      await expect(tcp.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(
        BackendUnavailableError,
      );
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("times out against a server that never answers", async () => {
    const silent = await fake(() => {});
    const client = new ClamdClient({ socket: silent.socketPath, ...streamed, readTimeoutMs: 200 });
    const started = Date.now();
    await expect(client.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(ScanTimeoutError);
    await expect(client.ping()).rejects.toThrow(/did not answer PING/);
    expect(Date.now() - started).toBeLessThan(2000);
    await vi.waitFor(() => expect(silent.open.size).toBe(0));
  });

  it("reports a server that answers garbage as a ProtocolError", async () => {
    const garbage = await fake((socket) => {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
    });
    const client = new ClamdClient({
      socket: garbage.socketPath,
      ...streamed,
      readTimeoutMs: 1000,
    });
    await expect(client.ping()).rejects.toBeInstanceOf(ProtocolError);
    await expect(client.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(ProtocolError);
  });

  it("reports UNKNOWN COMMAND as a ProtocolError naming the command", async () => {
    const old = await fake((socket) => socket.end("UNKNOWN COMMAND\0"));
    await expect(
      new ClamdClient({ socket: old.socketPath, ...streamed }).versionCommands(),
    ).rejects.toThrow(/VERSIONCOMMANDS .*does not know this command/);
  });

  it("reports a flood without terminators as a ProtocolError", async () => {
    const flood = await fake((socket) => {
      socket.write(Buffer.alloc(2 * 1024 * 1024, 0x41));
    });
    await expect(
      new ClamdClient({ socket: flood.socketPath, ...streamed }).ping(),
    ).rejects.toBeInstanceOf(ProtocolError);
  });

  it("reuses one connection for many scans (IDSESSION) and reconnects when it was dropped", async () => {
    const server = await fake(answering(() => "stream: OK"));
    const client = new ClamdClient({ socket: server.socketPath, ...streamed, maxConnections: 1 });
    for (let index = 0; index < 5; index += 1) {
      expect((await client.scan(artifactFromBytes(`file ${index}`))).reply.kind).toBe("ok");
    }
    expect(server.connections).toBe(1);
    for (const socket of server.open) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await client.scan(artifactFromBytes("after the drop"))).reply.kind).toBe("ok");
    expect(server.connections).toBe(2);
    await client.close();
  });

  it.each([
    ["empty", Buffer.alloc(0), "zIDSESSION\0zINSTREAM\0\0\0\0\0"],
    ["small", Buffer.from("abc"), "zIDSESSION\0zINSTREAM\0\0\0\0\x03abc\0\0\0\0"],
  ])("sends exactly one end frame for a %s artifact", async (_, content, expected) => {
    let seen = "";
    const server = await fake((socket, received) => {
      seen = received.toString("latin1");
      answering(() => "stream: OK")(socket, received);
    });
    const client = new ClamdClient({ socket: server.socketPath, ...streamed });
    expect((await client.scan(artifactFromBytes(content))).reply.kind).toBe("ok");
    expect(seen).toBe(expected);
    await client.close();
  });

  it("refuses an artifact over maxStreamBytes before connecting", async () => {
    const server = await fake(answering(() => "stream: OK"));
    const client = new ClamdClient({
      socket: server.socketPath,
      ...streamed,
      maxStreamBytes: 1024,
    });
    await expect(client.scan(artifactFromBytes(Buffer.alloc(1025)))).rejects.toBeInstanceOf(
      ArtifactTooLargeError,
    );
    expect(server.connections).toBe(0);
  });

  it("turns clamd's size-limit reply into ArtifactTooLargeError", async () => {
    const server = await fake(answering(() => "INSTREAM size limit exceeded. ERROR"));
    const client = new ClamdClient({ socket: server.socketPath, ...streamed });
    await expect(client.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(ArtifactTooLargeError);
  });

  it("reads a large upload dropped without a reply by a live clamd as its size refusal, a small one as unavailable", async () => {
    // clamd closing with unread data resets the connection, which can swallow its reply.
    const dropping = await fake((socket, received) => {
      if (received.toString("latin1").startsWith("zPING")) return void socket.end("PONG\0");
      const text = received.toString("latin1");
      if (text.startsWith("zIDSESSION\0zINSTREAM\0") && decodeInstreamFrames(received.subarray(21)))
        socket.destroy();
    });
    const client = new ClamdClient({ socket: dropping.socketPath, ...streamed });
    await expect(
      client.scan(artifactFromBytes(Buffer.alloc(2 * 1024 * 1024))),
    ).rejects.toBeInstanceOf(ArtifactTooLargeError);
    await expect(client.scan(artifactFromBytes(Buffer.alloc(100 * 1024)))).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
  });

  it("aborts mid-stream: the scan rejects at once and the socket is destroyed", async () => {
    const server = await fake(() => {});
    const client = new ClamdClient({ socket: server.socketPath, ...streamed });
    const controller = new AbortController();
    const scan = client.scan(stalledStreamArtifact(), { signal: controller.signal });
    await new Promise((resolve) => setTimeout(resolve, 50));
    controller.abort();
    await expect(scan).rejects.toBeInstanceOf(ScanAbortedError);
    await vi.waitFor(() => expect(server.open.size).toBe(0));
  });

  it("takes a defineScanner scan context as it is: its signal stops the scan, with its reason", async () => {
    const server = await fake(() => {});
    const client = new ClamdClient({ socket: server.socketPath, ...streamed });
    let handedOver = false;
    const scanner = defineScanner({
      name: "via-context",
      scan: async (artifact, context) => {
        handedOver = isScanContext(context);
        await client.scan(artifact, context);
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const controller = new AbortController();
    const reason = new ScanTimeoutError({ message: "the caller's own deadline passed" });
    const scan = scanner.scan(stalledStreamArtifact(), { signal: controller.signal });
    await vi.waitFor(() => expect(server.open.size).toBe(1));
    controller.abort(reason);
    await expect(scan).rejects.toBe(reason);
    expect(handedOver).toBe(true);
    await vi.waitFor(() => expect(server.open.size).toBe(0));
  });

  it("enforces the deadline of a context it did not get from defineScanner (same shape, made elsewhere)", async () => {
    const server = await fake(() => {}); // never answers
    const client = new ClamdClient({
      socket: server.socketPath,
      ...streamed,
      readTimeoutMs: 30_000,
    });
    const handMade = {
      signal: new AbortController().signal,
      deadline: Date.now() + 300,
      remainingMs: () => 300,
    };
    const started = Date.now();
    await expect(client.scan(stalledStreamArtifact(), handMade)).rejects.toBeInstanceOf(
      ScanTimeoutError,
    );
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("fails closed on an artifact whose stream gives strings instead of bytes (never an empty upload and OK)", async () => {
    const uploads: number[] = [];
    const server = await fake((socket, received) => {
      const text = received.toString("latin1");
      if (!text.startsWith("zIDSESSION\0zINSTREAM\0")) return;
      const upload = decodeInstreamFrames(received.subarray(21));
      if (!upload) return;
      uploads.push(upload.chunks.length);
      socket.write("1: stream: OK\0");
    });
    const client = new ClamdClient({ socket: server.socketPath, ...streamed });
    // A custom artifact (accepted by shape) whose stream is in string mode.
    const stringy = {
      kind: "stream",
      filename: undefined,
      mimetype: undefined,
      size: undefined,
      path: undefined,
      replayable: false,
      byteLength: async () => undefined,
      bytes: async () => Buffer.from("not used"),
      stream: () => Readable.from(["X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR"]),
    } as unknown as Artifact;
    await expect(client.scan(stringy)).rejects.toBeInstanceOf(ArtifactUnavailableError);
    expect(uploads).toEqual([]);
  });

  describe("FILDES on kept IDSESSION connections", () => {
    let directory: string;
    let path: string;
    afterEach(async () => {
      await rm(directory, { recursive: true, force: true });
    });
    async function aFile(): Promise<void> {
      directory = await mkdtemp(join(tmpdir(), "engine-fildes-"));
      path = join(directory, "a.txt");
      await writeFile(path, "hello");
    }

    it("passes every file on at most maxConnections kept sessions, reused, replies matched by id", async () => {
      await aFile();
      let outstanding = 0;
      let most = 0;
      let answered = 0;
      const server = await fake(
        answeringSessions((socket, request) => {
          outstanding += 1;
          most = Math.max(most, outstanding);
          setTimeout(() => {
            outstanding -= 1;
            answered += 1;
            const verdict = answered === 3 ? "Eicar-Signature FOUND" : "OK";
            socket.write(`${request}: fd[10]: ${verdict}\0`);
          }, 20);
          return undefined;
        }),
      );
      const client = new ClamdClient({ socket: server.socketPath, ...streamed, maxConnections: 2 });
      try {
        const outcomes = await Promise.all(
          Array.from({ length: 6 }, () => client.scan(artifactFromFile(path))),
        );
        expect(outcomes.every((outcome) => outcome.mode === "fildes")).toBe(true);
        expect(outcomes.map((outcome) => outcome.reply.kind).sort()).toEqual([
          "found",
          "ok",
          "ok",
          "ok",
          "ok",
          "ok",
        ]);
        expect(most).toBe(2);
        expect(server.connections).toBe(2);
        await Promise.all(Array.from({ length: 6 }, () => client.scan(artifactFromFile(path))));
        expect(server.connections).toBe(2); // kept and reused: no connection per file
        expect(client.usage).toEqual({ inUse: 0, waiting: 0, max: 2 });
        // A signal that is already aborted never takes a slot.
        await expect(
          client.scan(artifactFromFile(path), { signal: AbortSignal.abort() }),
        ).rejects.toBeInstanceOf(ScanAbortedError);
        expect(client.usage.inUse).toBe(0);
      } finally {
        await client.close();
      }
    });

    it("replaces a kept session clamd dropped while idle, once, and answers on the new one", async () => {
      await aFile();
      const server = await fake(
        answeringSessions((socket, request) => {
          if (server.connections === 1 && request === 2) {
            socket.destroy(); // clamd's IdleTimeout closed it as our request went out
            return undefined;
          }
          return "fd[10]: OK";
        }),
      );
      const client = new ClamdClient({ socket: server.socketPath, ...streamed });
      try {
        expect((await client.scan(artifactFromFile(path))).reply.kind).toBe("ok");
        const again = await client.scan(artifactFromFile(path));
        expect([again.mode, again.reply.kind]).toEqual(["fildes", "ok"]);
        expect(server.connections).toBe(2);
      } finally {
        await client.close();
      }
    });

    it("never takes the answer to another request: a reply with the wrong id is a ProtocolError", async () => {
      await aFile();
      const liar = await fake((socket, received) => {
        if (received.includes("zFILDES\0\0")) socket.write("7: fd[10]: OK\0");
      });
      const lied = new ClamdClient({ socket: liar.socketPath, ...streamed });
      try {
        await expect(lied.scan(artifactFromFile(path))).rejects.toBeInstanceOf(ProtocolError);
        expect(lied.usage.inUse).toBe(0);
      } finally {
        await lied.close();
      }
    });

    it("stops waiting at the caller's signal, drops that session and gives its slot back", async () => {
      await aFile();
      const closed: Socket[] = [];
      const server = await fake(
        answeringSessions((socket) => {
          socket.once("close", () => closed.push(socket));
          return undefined; // clamd never answers
        }),
      );
      const client = new ClamdClient({ socket: server.socketPath, ...streamed, maxConnections: 1 });
      try {
        const started = performance.now();
        const caller = new AbortController();
        setTimeout(() => caller.abort(), 100);
        await expect(
          client.scan(artifactFromFile(path), { signal: caller.signal }),
        ).rejects.toBeInstanceOf(ScanAbortedError);
        expect(performance.now() - started).toBeLessThan(2000);
        expect(client.usage.inUse).toBe(0);
        await vi.waitFor(() => expect(closed).toHaveLength(1));
      } finally {
        await client.close();
      }
    });
  });

  it("checkClamdAlerts passes only on the alerts themselves, not on any detection", async () => {
    const detectsAnything = await fake(answering(() => "stream: Eicar-Test-Signature FOUND"));
    const lenient = await checkClamdAlerts(
      new ClamdClient({ socket: detectsAnything.socketPath, ...streamed }),
    );
    expect(lenient.map((probe) => [probe.probe, probe.passed, probe.answer])).toEqual([
      ["encrypted-archive", false, "Eicar-Test-Signature FOUND"],
      ["nested-archive", false, "Eicar-Test-Signature FOUND"],
    ]);
    const alerting = await fake(
      answering((request) =>
        request === 1
          ? "stream: Heuristics.Encrypted.Zip FOUND"
          : "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND",
      ),
    );
    const strict = await checkClamdAlerts(
      new ClamdClient({ socket: alerting.socketPath, ...streamed }),
    );
    expect(strict.map((probe) => probe.passed)).toEqual([true, true]);
  });

  it("validates its options", () => {
    expect(() => new ClamdClient({ socket: "/a", port: 3310 })).toThrow(InvalidOptionsError);
    expect(() => new ClamdClient({ port: 70000 })).toThrow(InvalidOptionsError);
    expect(() => new ClamdClient({ chunkBytes: 10 })).toThrow(InvalidOptionsError);
    expect(() => createClamavScanner({ socket: "/a", host: "b" })).toThrow(InvalidOptionsError);
    expect(() => createClamavScanner({ heuristicVerdict: "benign" } as never)).toThrow(
      InvalidOptionsError,
    );
  });
});

describe("createClamavScanner answers", () => {
  it.each([
    ["stream: OK", "benign", 1, ""],
    ["stream: Win.Test.Thing FOUND", "malicious", 1, "Win.Test.Thing"],
    ["stream: Heuristics.Phishing.Email FOUND", "suspicious", 0.5, "Heuristics.Phishing.Email"],
    ["stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND", "unknown", 0, ""],
    ["stream: Heuristics.Encrypted.Zip FOUND", "unknown", 0, ""],
  ])("maps %j to %s", async (reply, verdict, confidence, family) => {
    const server = await fake((socket, received) => {
      if (received.toString().startsWith("zPING")) socket.end("PONG\0");
      else if (received.toString().startsWith("zVERSION"))
        socket.end("ClamAV 1.4.6/27000/Thu Nov 20 08:00:00 2026\0");
      else answering(() => reply)(socket, received);
    });
    const scanner = createClamavScanner({ socket: server.socketPath, ...streamed });
    const result = await scanner.scan(artifactFromBytes("content"));
    expect(result).toMatchObject({ verdict, confidence, metadata: { malware_family: family } });
    expect(result.metadata.scanner).toMatchObject({
      vendor_version: "1.4.6",
      signatures_version: "27000",
    });
    if (verdict === "unknown") expect(result.metadata.comments?.[0]).toMatch(/^SKIPPED:/);
    await scanner.close?.();
  });

  it("throws instead of answering when clamd reports an error", async () => {
    const server = await fake((socket, received) => {
      if (received.toString().startsWith("zPING")) socket.end("PONG\0");
      else if (received.toString().startsWith("zVERSION")) socket.end("ClamAV 1.4.6\0");
      else answering(() => "Can't allocate memory ERROR")(socket, received);
    });
    const scanner = createClamavScanner({ socket: server.socketPath, ...streamed });
    await expect(scanner.scan(artifactFromBytes("content"))).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
  });
});
