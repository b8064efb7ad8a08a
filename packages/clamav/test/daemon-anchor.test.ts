import { afterEach, describe, expect, it } from "vitest";
import { DaemonAnchor } from "../src/daemon-anchor.js";
import { DaemonGeneration } from "../src/daemon-generation.js";
import { type FakeClamd, startFakeClamd } from "./fake-clamd.js";

// FILDES calls open a connection each; counted as a new daemon generation each, they made the
// alert guard probe clamd again after every file (a directory scan: 28.5 s, now 13.4 s).
const fakes: FakeClamd[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake[Symbol.asyncDispose]();
});

async function anchoredDaemon(): Promise<{
  fake: FakeClamd;
  anchor: DaemonAnchor;
  generation: DaemonGeneration;
}> {
  const fake = await startFakeClamd(() => {}); // an IDSESSION that waits, as clamd's does
  fakes.push(fake);
  const generation = new DaemonGeneration();
  const anchor = new DaemonAnchor({ socket: fake.socketPath }, generation, {
    connectTimeoutMs: 1000,
    idleTimeoutMs: 200,
  });
  return { fake, anchor, generation };
}

const never = new AbortController().signal;

describe("DaemonAnchor", () => {
  it("keeps FILDES calls in the generation its kept connection began, however many there are", async () => {
    const { fake, anchor, generation } = await anchoredDaemon();
    try {
      expect(await anchor.run(never, async () => "1: fd[10]: OK")).toBe("1: fd[10]: OK");
      const first = generation.current;
      expect(first).toBe(1); // the anchor's connection
      await Promise.all(Array.from({ length: 50 }, () => anchor.run(never, async () => "OK")));
      expect(generation.current).toBe(first);
      expect(fake.connections).toBe(1);
      expect(generation.live).toBe(1); // the anchor alone; the calls ended
    } finally {
      anchor.close();
    }
  });

  it("begins a new generation when the daemon closed the anchor during a call, before the call's answer is handed back", async () => {
    const { fake, anchor, generation } = await anchoredDaemon();
    try {
      await anchor.run(never, async () => "OK");
      const before = generation.current;
      const answer = await anchor.run(never, async () => {
        for (const socket of fake.open) socket.destroy(); // clamd stopped (restarted)
        await new Promise((resolve) => setTimeout(resolve, 20));
        return "OK";
      });
      expect(answer).toBe("OK");
      expect(generation.current).toBeGreaterThan(before);
      // The next call opens another anchor: one more generation, then it holds again.
      await anchor.run(never, async () => "OK");
      const reopened = generation.current;
      await anchor.run(never, async () => "OK");
      expect(generation.current).toBe(reopened);
      expect(fake.connections).toBe(2);
    } finally {
      anchor.close();
    }
  });

  it("does not call when the anchor cannot connect, and rejects with the connection failure", async () => {
    const generation = new DaemonGeneration();
    const anchor = new DaemonAnchor({ socket: "/nonexistent/clamd.sock" }, generation, {
      connectTimeoutMs: 500,
      idleTimeoutMs: 200,
    });
    let called = false;
    await expect(
      anchor.run(never, async () => {
        called = true;
        return "OK";
      }),
    ).rejects.toMatchObject({ kind: "connect-failed" });
    expect(called).toBe(false);
    expect(generation.live).toBe(0);
  });

  it("closes an idle anchor after idleTimeoutMs and never keeps the process alive while idle", async () => {
    const { fake, anchor } = await anchoredDaemon();
    try {
      const sockets = () =>
        process.getActiveResourcesInfo().filter((name) => name === "PipeWrap").length;
      const before = sockets();
      await anchor.run(never, async () => "OK");
      // Idle: open, but not counted among what keeps the event loop alive (the fake daemon's
      // end of it, in this process too, is left out of the count).
      expect(fake.open.size).toBe(1);
      for (const socket of fake.open) socket.unref();
      expect(sockets()).toBe(before);
      await new Promise((resolve) => setTimeout(resolve, 400));
      expect(fake.open.size).toBe(0);
    } finally {
      anchor.close();
    }
  });

  it("counts a call that throws at once as ended (the anchor can go idle and stop holding the process)", async () => {
    const { anchor, generation } = await anchoredDaemon();
    try {
      await expect(
        anchor.run(never, () => {
          throw new Error("the addon refused its arguments");
        }),
      ).rejects.toThrow("refused its arguments");
      expect(generation.live).toBe(1); // the anchor alone
    } finally {
      anchor.close();
    }
  });

  it("stops waiting at the caller's signal while the call goes on", async () => {
    const { anchor, generation } = await anchoredDaemon();
    try {
      const controller = new AbortController();
      let finish: (value: string) => void = () => {};
      const call = new Promise<string>((resolve) => {
        finish = resolve;
      });
      const waiting = anchor.run(controller.signal, () => call);
      await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort(new Error("stopped"));
      await expect(waiting).rejects.toThrow(/aborted/);
      expect(generation.live).toBe(2); // the anchor and the call still running
      finish("OK");
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(generation.live).toBe(1);
    } finally {
      anchor.close();
    }
  });
});
