import pino from "pino";
import { describe, expect, it } from "vitest";
import {
  createRedisResultStore,
  maximumEntryBytes,
} from "../../src/backends/redis-result-store.js";
import { RedisSeal } from "../../src/queue/redis-seal.js";
import { useRedis } from "../harness/redis.js";

// The shared result cache lives beside BullMQ (noeviction): it must bound itself.
const redisServer = useRedis();
const quiet = pino({ level: "silent" });

/** A store once connected: it fails fast (no offline queue) until its connection is up. */
async function connected(prefix: string, maxBytes: number) {
  const store = createRedisResultStore(redisServer.server.url, prefix, quiet, {
    maxBytes,
    seal: new RedisSeal("result-store-test-secret"),
  });
  for (let attempt = 0; attempt < 100; attempt += 1) {
    if (
      await store.get("probe").then(
        () => true,
        () => false,
      )
    )
      return store;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error("the store did not connect");
}

describe("the Redis result store", () => {
  it("keeps its entries under maxBytes, dropping the oldest first", async () => {
    const store = await connected("bounded", 10_000);
    try {
      for (let index = 0; index < 100; index += 1)
        await store.set(`key-${index}`, { index, padding: "x".repeat(900) }, 60_000);
      const total = Number(await redisServer.client.get("{bounded:result}:total"));
      expect(total).toBeLessThanOrEqual(10_000);
      expect(total).toBeGreaterThan(8_000);
      expect(await store.get("key-0")).toBeUndefined();
      expect(await store.get("key-99")).toMatchObject({ index: 99 });
      const entries = await redisServer.client.keys("{bounded:result}:key-*");
      expect(entries.length).toBeLessThanOrEqual(11);
    } finally {
      await store.close();
    }
  });

  it("takes expired entries off the books, and refuses oversized values both ways", async () => {
    const store = await connected("expiring", 1_000_000);
    try {
      await store.set("short", { a: 1 }, 20);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await store.set("later", { b: 2 }, 60_000);
      expect(
        await redisServer.client.hexists("{expiring:result}:sizes", "{expiring:result}:short"),
      ).toBe(0);
      await store.set("huge", { text: "y".repeat(maximumEntryBytes) }, 60_000);
      expect(await redisServer.client.exists("{expiring:result}:huge")).toBe(0);
      // Counted in bytes, not UTF-16 units: 30,000 three-byte characters are 90 KB.
      await store.set("wide", { text: "\u20ac".repeat(30_000) }, 60_000);
      expect(await redisServer.client.exists("{expiring:result}:wide")).toBe(0);
      // A hostile value (deeply nested, larger than any result) is a miss, not a crash.
      await redisServer.client.set(
        "{expiring:result}:hostile",
        `${"[".repeat(200_000)}${"]".repeat(200_000)}`,
      );
      expect(await store.get("hostile")).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it("second audit, item 5: ignores an entry rewritten, copied from another key or sealed with another secret", async () => {
    const store = await connected("sealed", 1_000_000);
    const other = createRedisResultStore(redisServer.server.url, "sealed", quiet, {
      maxBytes: 1_000_000,
      seal: new RedisSeal("another-secret-entirely"),
    });
    try {
      await store.set("eicar", { verdict: "malicious" }, 60_000);
      await store.set("clean", { verdict: "benign" }, 60_000);
      expect(await store.get("eicar")).toEqual({ verdict: "malicious" });
      // Rewritten in place: the value says benign now, the seal is the old one.
      const stored = JSON.parse((await redisServer.client.get("{sealed:result}:eicar")) ?? "{}");
      await redisServer.client.set(
        "{sealed:result}:eicar",
        JSON.stringify({ ...stored, value: JSON.stringify({ verdict: "benign" }) }),
      );
      expect(await store.get("eicar")).toBeUndefined();
      // Copied whole from another key: its seal names the other key.
      await redisServer.client.set(
        "{sealed:result}:eicar",
        (await redisServer.client.get("{sealed:result}:clean")) ?? "",
      );
      expect(await store.get("eicar")).toBeUndefined();
      // A plain value, as the cache stored before it was sealed.
      await redisServer.client.set("{sealed:result}:eicar", JSON.stringify({ verdict: "benign" }));
      expect(await store.get("eicar")).toBeUndefined();
      // An engine with another secret reads nothing of this one's.
      expect(await other.get("clean")).toBeUndefined();
      expect(await store.get("clean")).toEqual({ verdict: "benign" });
    } finally {
      await Promise.all([store.close(), other.close()]);
    }
  });
});
