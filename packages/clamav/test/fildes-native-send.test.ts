// The addon's sendRegularFile against a plain unix socket server: what goes on the wire, what is
// refused unsent, and that no descriptor (the file's, or the socket's duplicate) is left open.
// clamd is not needed: the server sees the 9 bytes FILDES sends (the descriptor rides beside them).
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { sendRegularFile } from "@engine/clamav-native";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";

let directory: string;
let server: Server;
let received: Buffer[];
let accepted: Socket[];
let client: Socket | undefined;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-fildes-native-"));
  await writeFile(join(directory, "ten.bin"), "0123456789");
  await writeFile(join(directory, "empty.bin"), "");
  await mkdir(join(directory, "a-directory"));
  execFileSync("mkfifo", [join(directory, "a-fifo")]);
  server = createServer((socket) => {
    accepted.push(socket);
    socket.on("data", (data) => received.push(data));
    socket.on("error", () => {});
  });
  await new Promise<void>((resolve) => server.listen(join(directory, "peer.sock"), resolve));
});
afterEach(() => {
  client?.destroy();
  client = undefined;
  for (const socket of accepted) socket.destroy();
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(directory, { recursive: true, force: true });
});

/** A connected client socket and its descriptor; `received` and `accepted` start empty. */
async function connected(): Promise<number> {
  received = [];
  accepted = [];
  // Half-open allowed: Node keeps its end (and its descriptor) when the peer closes.
  const socket = connect({ path: join(directory, "peer.sock"), allowHalfOpen: true });
  client = socket;
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  await expect.poll(() => accepted.length).toBe(1);
  return (socket as Socket & { _handle: { fd: number } })._handle.fd;
}

const descriptors = (): number => readdirSync("/proc/self/fd").length;

describe("sendRegularFile", () => {
  it("sends zFILDES with the file in one trip, resolves its size, and leaves no descriptor open", async () => {
    const socket = await connected();
    const before = descriptors();
    await expect(sendRegularFile(socket, join(directory, "ten.bin"), 10)).resolves.toBe(10);
    expect(descriptors()).toBe(before); // the file and the socket's duplicate are closed
    await expect.poll(() => Buffer.concat(received).toString("latin1")).toBe("zFILDES\0\0");
  });

  it("refuses unsent, with a code: a file over maxBytes (with its size), a directory, a FIFO (never blocking), a missing path, a size of 0", async () => {
    const socket = await connected();
    const before = descriptors();
    const refusal = (path: string, maxBytes = 1024) =>
      sendRegularFile(socket, resolve(directory, path), maxBytes).then(
        () => ({ code: "sent" }),
        (error: { code: string; size?: number }) => ({ code: error.code, size: error.size }),
      );
    expect(await refusal("ten.bin", 9)).toEqual({ code: "ETOOLARGE", size: 10 });
    expect((await refusal("a-directory")).code).toBe("ENOTREG");
    expect((await refusal("a-fifo")).code).toBe("ENOTREG"); // opened non-blocking: no writer needed
    expect((await refusal("gone.bin")).code).toBe("EOPEN");
    // A size of 0: clamd would read nothing, though a procfs file that says so has content.
    expect((await refusal("empty.bin")).code).toBe("EEMPTY");
    expect((await refusal("/proc/self/status")).code).toBe("EEMPTY");
    expect(descriptors()).toBe(before);
    // Nothing went on the socket: the next send is the first thing the peer reads.
    await sendRegularFile(socket, join(directory, "ten.bin"), 10);
    await expect.poll(() => Buffer.concat(received).toString("latin1")).toBe("zFILDES\0\0");
  });

  it("rejects ESEND once the peer closed the session, and sends on its own duplicate when Node closes the socket meanwhile", async () => {
    const socket = await connected();
    accepted[0]?.destroy();
    await expect.poll(() => client?.readableEnded).toBe(true);
    expect(client?.destroyed).toBe(false);
    const closed = await sendRegularFile(socket, join(directory, "ten.bin"), 10).catch(
      (error: { code: string }) => error.code,
    );
    expect(closed).toBe("ESEND");

    // Node closes the session's socket while the send is queued: the send goes on the duplicate
    // taken at the call (to the peer it was meant for) or fails, and never throws synchronously.
    const next = await connected();
    const sending = sendRegularFile(next, join(directory, "ten.bin"), 10);
    client?.destroy();
    const outcome = await sending.then(
      () => "sent",
      (error: { code: string }) => error.code,
    );
    expect(["sent", "ESEND"]).toContain(outcome);
    if (outcome === "sent")
      await expect.poll(() => Buffer.concat(received).toString("latin1")).toBe("zFILDES\0\0");
  });

  it("throws a TypeError for arguments it cannot use, before queueing anything", () => {
    expect(() => sendRegularFile(-1, "x", 1)).toThrow(/takes a descriptor/);
    expect(() => sendRegularFile(3, "x", -1)).toThrow(/takes a descriptor/);
    expect(() => sendRegularFile(3, "a\0b", 1)).toThrow(/NUL/);
  });
});
