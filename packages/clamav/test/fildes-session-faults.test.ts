// FILDES on kept sessions when the addon's send fails: what happens to the session, the request
// ids and the file's descriptor. The addon is the real one, its sends failing as each test scripts
// (before anything is opened or sent); clamd is scripted (it cannot see descriptors, only the
// bytes they come with).
import { readdirSync, readlinkSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ArtifactUnavailableError,
  artifactFromBytes,
  artifactFromFile,
  ProtocolError,
} from "@engine/core";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ClamdClient } from "../src/index.js";
import { answeringSessions, type FakeClamd, startFakeClamd } from "./fake-clamd.js";

const send = vi.hoisted(() => ({ fail: [] as string[], memoryFails: false }));
vi.mock("@engine/clamav-native", async (importOriginal) => {
  const native = await importOriginal<typeof import("@engine/clamav-native")>();
  return {
    ...native,
    memoryFile: (bytes: Uint8Array) => {
      if (send.memoryFails) throw Object.assign(new Error("scripted EMEMFD"), { code: "EMEMFD" });
      return native.memoryFile(bytes);
    },
    sendFileDescriptor: (socket: number, file: number) => {
      const code = send.fail.shift();
      if (code) throw Object.assign(new Error(`scripted ${code}`), { code });
      native.sendFileDescriptor(socket, file);
    },
    sendRegularFile: async (socket: number, file: string, maxBytes: number) => {
      const code = send.fail.shift();
      if (code) throw Object.assign(new Error(`scripted ${code}`), { code });
      return native.sendRegularFile(socket, file, maxBytes);
    },
  };
});

let directory: string;
let path: string;
let fake: FakeClamd | undefined;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-fildes-faults-"));
  path = join(directory, "a.txt");
  await writeFile(path, "hello");
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});
afterEach(async () => {
  send.fail = [];
  send.memoryFails = false;
  await fake?.[Symbol.asyncDispose]();
  fake = undefined;
});
/** What this process's descriptors point at. */
const openFiles = (): string[] =>
  readdirSync("/proc/self/fd").flatMap((fd) => {
    try {
      return [readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return [];
    }
  });

describe("FILDES on a kept session, when the send fails", () => {
  it("streams the file when nothing was sent (socket full, or refused), keeping the session in step", async () => {
    fake = await startFakeClamd(answeringSessions(() => "fd[10]: OK"));
    const client = new ClamdClient({ socket: fake.socketPath, maxConnections: 1 });
    try {
      expect((await client.scan(artifactFromFile(path))).mode).toBe("fildes"); // request 1
      for (const code of ["EAGAIN", "ENOTSENT"]) {
        send.fail = [code];
        const streamed = await client.scan(artifactFromFile(path)); // by INSTREAM instead
        expect([streamed.mode, streamed.reply.kind]).toEqual(["instream", "ok"]);
      }
      expect((await client.scan(artifactFromFile(path))).mode).toBe("fildes"); // request 4
      expect(fake.connections).toBe(1); // the same session: nothing went out of step
      // Every descriptor of the file was closed (the closes run on the thread pool).
      await vi.waitFor(() => expect(openFiles().filter((file) => file === path)).toEqual([]));
    } finally {
      await client.close();
    }
  });

  it("replaces a kept session whose socket is closed (ESEND) and answers on the new one", async () => {
    fake = await startFakeClamd(answeringSessions(() => "fd[10]: OK"));
    const client = new ClamdClient({ socket: fake.socketPath, maxConnections: 1 });
    try {
      await client.scan(artifactFromFile(path));
      send.fail = ["ESEND"];
      const again = await client.scan(artifactFromFile(path));
      expect([again.mode, again.reply.kind]).toEqual(["fildes", "ok"]);
      expect(fake.connections).toBe(2);
      expect(client.usage.inUse).toBe(0);
    } finally {
      await client.close();
    }
  });

  it("never takes a stray reply for a later request: a kept session that answers twice is a ProtocolError", async () => {
    fake = await startFakeClamd(
      answeringSessions((socket, request) => {
        if (request === 1) socket.write("1: fd[10]: OK\0"); // a duplicate, left queued
        return "fd[10]: OK";
      }),
    );
    const client = new ClamdClient({ socket: fake.socketPath, maxConnections: 1 });
    try {
      expect((await client.scan(artifactFromFile(path))).reply.kind).toBe("ok");
      const next = await client.scan(artifactFromFile(path)).catch((error: unknown) => error);
      expect(ProtocolError.isInstance(next)).toBe(true);
      // The session is dropped: the next scan gets a new one and an answer of its own.
      expect((await client.scan(artifactFromFile(path))).reply.kind).toBe("ok");
      expect(fake.connections).toBe(2);
    } finally {
      await client.close();
    }
  });

  it("refuses a directory or a missing file without sending, and leaks no descriptor", async () => {
    fake = await startFakeClamd(answeringSessions(() => "fd[10]: OK"));
    const client = new ClamdClient({ socket: fake.socketPath, maxConnections: 1 });
    try {
      await client.scan(artifactFromFile(path));
      for (const target of [directory, join(directory, "gone.bin")]) {
        const refused = await client
          .scan(artifactFromFile(target, { size: 5 }))
          .catch((error: unknown) => error);
        expect(ArtifactUnavailableError.isInstance(refused)).toBe(true);
      }
      await vi.waitFor(() =>
        expect(openFiles().filter((file) => file.startsWith(directory))).toEqual([]),
      );
      expect((await client.scan(artifactFromFile(path))).reply.kind).toBe("ok"); // still in step
      expect(fake.connections).toBe(1);
    } finally {
      await client.close();
    }
  });

  it("passes bytes in memory as a memory file, and streams them when one cannot be made", async () => {
    fake = await startFakeClamd(answeringSessions(() => "fd[10]: OK"));
    const client = new ClamdClient({ socket: fake.socketPath, maxConnections: 1 });
    try {
      expect((await client.scan(artifactFromBytes("in memory"))).mode).toBe("fildes");
      send.memoryFails = true;
      const streamed = await client.scan(artifactFromBytes("in memory"));
      expect([streamed.mode, streamed.reply.kind]).toEqual(["instream", "ok"]);
      send.memoryFails = false;
      send.fail = ["EAGAIN"]; // made, but the socket was full: streamed, its memory file closed
      const full = await client.scan(artifactFromBytes("in memory"));
      expect([full.mode, full.reply.kind]).toEqual(["instream", "ok"]);
      expect(openFiles().filter((file) => file.startsWith("/memfd:"))).toEqual([]);
      expect((await client.scan(artifactFromBytes("in memory"))).mode).toBe("fildes");
      expect(fake.connections).toBe(1);
    } finally {
      await client.close();
    }
  });
});
