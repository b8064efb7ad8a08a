import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
