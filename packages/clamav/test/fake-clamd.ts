import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeInstreamFrames } from "../src/instream-framing.js";

/** What the fake clamd does with each connection's bytes. */
export type FakeBehaviour = (socket: Socket, received: Buffer) => void;

/** A scripted clamd on a local unix socket, for fault tests that a real clamd cannot stage. */
export interface FakeClamd extends AsyncDisposable {
  socketPath: string;
  connections: number;
  open: Set<Socket>;
}

/** Starts a fake clamd; `behaviour` sees everything received so far on each data event. */
export async function startFakeClamd(behaviour: FakeBehaviour): Promise<FakeClamd> {
  const directory = await mkdtemp(join(tmpdir(), "engine-fake-clamd-"));
  const socketPath = join(directory, "clamd.sock");
  const open = new Set<Socket>();
  const fake: FakeClamd = {
    socketPath,
    connections: 0,
    open,
    [Symbol.asyncDispose]: async () => {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      await rm(directory, { recursive: true, force: true });
    },
  };
  const server: Server = createServer((socket) => {
    fake.connections += 1;
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    let received = Buffer.alloc(0);
    socket.on("data", (data) => {
      received = Buffer.concat([received, data]);
      behaviour(socket, received);
    });
  });
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  return fake;
}

const fildes = Buffer.from("zFILDES\0\0");
const instream = Buffer.from("zINSTREAM\0");
/**
 * A {@link FakeBehaviour} that answers each FILDES (with `reply(socket, request)`; undefined: nothing) and each complete
 * INSTREAM upload (`stream: OK`) of an IDSESSION, numbering requests as clamd does.
 */
export function answeringSessions(reply: (socket: Socket, request: number) => string | undefined) {
  const states = new WeakMap<Socket, { request: number; consumed: number }>();
  return (socket: Socket, received: Buffer) => {
    const state = states.get(socket) ?? { request: 0, consumed: 0 };
    states.set(socket, state);
    if (state.consumed === 0) {
      if (received.subarray(0, 11).toString() !== "zIDSESSION\0") return;
      state.consumed = 11;
    }
    for (;;) {
      const rest = received.subarray(state.consumed);
      if (rest.subarray(0, 9).equals(fildes)) {
        state.consumed += 9;
        state.request += 1;
        const text = reply(socket, state.request);
        if (text !== undefined) socket.write(`${state.request}: ${text}\0`);
      } else if (rest.subarray(0, 10).equals(instream)) {
        const upload = decodeInstreamFrames(rest.subarray(10));
        if (!upload) return;
        state.consumed += rest.length - upload.rest.length;
        state.request += 1;
        socket.write(`${state.request}: stream: OK\0`);
      } else return;
    }
  };
}
