import { artifactFromBytes, BackendUnavailableError, eicarBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ClamdPool, createClamavScanner, parseClamdHost } from "../src/index.js";
import { type ManagedClamd, startManagedClamd } from "../src/managed.js";

// Two real clamd daemons behind one pool; one is killed mid-run and comes back.
let first: ManagedClamd;
let second: ManagedClamd;
beforeAll(async () => {
  [first, second] = await Promise.all([startManagedClamd(), startManagedClamd()]);
});
afterAll(async () => {
  await Promise.all([first?.[Symbol.asyncDispose](), second?.[Symbol.asyncDispose]()]);
});

describe("a pool of clamd daemons (CLAMD_HOSTS)", () => {
  it("parses host:port, [v6]:port and socket paths, and refuses the rest", () => {
    expect(parseClamdHost("10.0.0.5:3310")).toEqual({ host: "10.0.0.5", port: 3310 });
    expect(parseClamdHost("[::1]:3310")).toEqual({ host: "::1", port: 3310 });
    expect(parseClamdHost("/run/clamav/clamd.ctl")).toEqual({ socket: "/run/clamav/clamd.ctl" });
    expect(parseClamdHost("unix:/tmp/c.sock")).toEqual({ socket: "/tmp/c.sock" });
    expect(() => parseClamdHost("clamd")).toThrow(/not a clamd address/);
    expect(() => parseClamdHost("h:99999")).toThrow(/not a clamd address/);
  });

  it("spreads scans, goes on through the other daemon when one is killed, and returns to it when it is back", async () => {
    const hosts = [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`];
    await using scanner = createClamavScanner({ hosts });
    const pool = scanner.client as ClamdPool;
    const scanMany = async (count: number) => {
      const verdicts = await Promise.all(
        Array.from({ length: count }, (_, index) =>
          scanner.scan(artifactFromBytes(index % 2 ? eicarBytes() : Buffer.from(`clean ${index}`))),
        ),
      );
      return verdicts.map((result) => result.verdict);
    };
    expect(await scanMany(20)).toEqual(
      Array.from({ length: 20 }, (_, index) => (index % 2 ? "malicious" : "benign")),
    );
    const [a, b] = pool.hosts();
    expect(a?.scans).toBeGreaterThan(0);
    expect(b?.scans).toBeGreaterThan(0);

    // One daemon dies mid-run. Scans that could not reach it go to the other; the few it held
    // when it died fail (never a verdict: it may have died of their artifact, and would take
    // the other daemon down with it); every later scan goes to the other one.
    const running = Promise.allSettled(
      Array.from({ length: 40 }, (_, index) =>
        scanner.scan(artifactFromBytes(index % 2 ? eicarBytes() : Buffer.from(`clean ${index}`))),
      ),
    );
    await first.kill();
    const settled = await running;
    const failures = settled.filter((outcome) => outcome.status === "rejected");
    expect(failures.length).toBeLessThanOrEqual(4); // at most its maxConnections in flight
    for (const failure of failures)
      expect((failure as PromiseRejectedResult).reason).toBeInstanceOf(BackendUnavailableError);
    settled.forEach((outcome, index) => {
      if (outcome.status === "fulfilled")
        expect(outcome.value.verdict).toBe(index % 2 ? "malicious" : "benign");
    });
    expect(await scanMany(10)).toHaveLength(10);
    expect(pool.hosts()[0]).toMatchObject({ healthy: false });
    const onSecond = pool.hosts()[1]?.scans ?? 0;

    // It comes back: the health check notices and scans return to it.
    await first.restart();
    await vi.waitFor(() => expect(pool.hosts()[0]?.healthy).toBe(true), { timeout: 10_000 });
    const before = pool.hosts()[0]?.scans ?? 0;
    await scanMany(20);
    expect(pool.hosts()[0]?.scans ?? 0).toBeGreaterThan(before);
    expect(pool.hosts()[1]?.scans ?? 0).toBeGreaterThan(onSecond);
  });

  it("answers BackendUnavailableError, never a verdict, when every daemon is down", async () => {
    const pool = new ClamdPool(["127.0.0.1:1", "/nonexistent/clamd.sock"], {
      connectTimeoutMs: 300,
    });
    await expect(pool.scan(artifactFromBytes("x"))).rejects.toThrow(/no clamd of the pool/);
    expect(pool.hosts().every((host) => !host.healthy)).toBe(true);
    await pool.close();
  });
});
