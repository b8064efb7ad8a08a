import { artifactFromBytes } from "@engine/core";
import { afterEach, describe, expect, it } from "vitest";
import { ClamdClient } from "../src/index.js";
import { decodeInstreamFrames } from "../src/instream-framing.js";
import { type FakeClamd, startFakeClamd } from "./fake-clamd.js";

/** These scripted clamds speak INSTREAM: bytes in memory are streamed, not passed as memory files. */
const streamed = { memoryFileMaxBytes: 0 } as const;

const fakes: FakeClamd[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake[Symbol.asyncDispose]();
});

/** What keeps the event loop alive now: unix sockets (PipeWrap) counted. */
const liveSockets = (): number =>
  process.getActiveResourcesInfo().filter((name) => name === "PipeWrap").length;

describe("ClamdClient's kept connections", () => {
  it("never keep the process alive while idle (a finished command exited only at the idle timeout, 10 s later)", async () => {
    const fake = await startFakeClamd((socket, received) => {
      // IDSESSION, then INSTREAM uploads answered OK in order.
      let rest = received.subarray(11);
      let request = 0;
      while (rest.subarray(0, 10).toString() === "zINSTREAM\0") {
        const upload = decodeInstreamFrames(rest.subarray(10));
        if (!upload) return;
        request += 1;
        rest = Buffer.from(upload.rest.buffer, upload.rest.byteOffset, upload.rest.byteLength);
      }
      if (request > 0 && rest.length === 0) socket.write(`${request}: stream: OK\0`);
    });
    fakes.push(fake);
    const client = new ClamdClient({ socket: fake.socketPath, ...streamed, idleTimeoutMs: 60_000 });
    try {
      const before = liveSockets();
      const outcome = await client.scan(artifactFromBytes("clean"));
      expect(outcome.reply.kind).toBe("ok");
      expect(fake.open.size).toBe(1); // kept for reuse
      for (const socket of fake.open) socket.unref(); // the fake daemon's end, in this process
      expect(liveSockets()).toBe(before);
    } finally {
      await client.close();
    }
  });
});
