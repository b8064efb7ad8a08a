import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, expect, vi } from "vitest";

/** A real redis-server on its own port and directory, started and stopped by the tests. */
export interface RedisServer {
  url: string;
  /** Stops it (SIGTERM: with appendonly the data is kept for `start()`). */
  stop(): Promise<void>;
  /** Starts it again on the same port and directory. */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  dispose(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Starts redis-server (Debian's, installed by the test script) with `appendonly` as asked. */
export async function startRedis(options: { appendonly?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort();
  const directory = await mkdtemp(join(tmpdir(), "engine-redis-"));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = spawn(
      "redis-server",
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        directory,
        "--save",
        "",
        "--appendonly",
        options.appendonly ? "yes" : "no",
        "--appendfsync",
        "always",
      ],
      { stdio: "ignore" },
    );
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    probe.on("error", () => {}); // refused until redis-server listens
    await vi.waitFor(
      async () => {
        await probe.connect().catch(() => {});
        expect(await probe.ping()).toBe("PONG");
      },
      { timeout: 10_000, interval: 50 },
    );
    probe.disconnect();
  };
  const stop = async (): Promise<void> => {
    const running = child;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGTERM");
    await exited;
  };
  await start();
  return {
    url,
    start,
    stop,
    dispose: async () => {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/**
 * A redis-server for the file's tests (started before them, disposed after), with a client
 * connected to it: read both inside tests or hooks.
 */
export function useRedis(): { readonly server: RedisServer; readonly client: Redis } {
  let server: RedisServer | undefined;
  let client: Redis | undefined;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.dispose();
  });
  return {
    get server() {
      if (!server) throw new Error("redis-server starts in beforeAll");
      return server;
    },
    get client() {
      if (!client) throw new Error("redis-server starts in beforeAll");
      return client;
    },
  };
}
