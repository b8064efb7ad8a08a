import { artifactFromBytes, artifactFromFile, createEicarScanner, eicarBytes } from "@engine/core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import { createEngineMultiScanner } from "../../src/backends/engine-multi-scanner.js";
import { createResultCache, resultCacheArtifactKey } from "../../src/backends/result-cache.js";
import { loadConfig } from "../../src/config/config.js";
import type { EngineMetrics } from "../../src/operations/metrics.js";

const quiet = pino({ level: "silent" });

function eicarEngine(environment: NodeJS.ProcessEnv) {
  const scanner = createEicarScanner();
  const running: EngineBackend[] = [
    {
      name: scanner.name,
      scanner,
      status: { name: scanner.name, running: true, reason: "test" },
      health: async () => ({ ok: true }),
    },
  ];
  const settings = loadConfig({ ENGINE_BACKENDS: "eicar", ...environment });
  const multi = createEngineMultiScanner(running, settings.VERDICT_POLICY.policy, quiet);
  return { running, settings, multi };
}

describe("the result cache", () => {
  it("keys what a backend sees of an artifact, not where a spooled one lies", () => {
    const spooled = (path: string) => artifactFromFile(path, { filename: "sample.exe" });
    expect(resultCacheArtifactKey(spooled("/tmp/a1"))).toBe(
      resultCacheArtifactKey(spooled("/tmp/b2")),
    );
    expect(resultCacheArtifactKey(spooled("/tmp/a1"))).not.toBe(
      resultCacheArtifactKey(artifactFromBytes("x", { filename: "sample.exe" })),
    );
    expect(resultCacheArtifactKey(artifactFromBytes("x", { filename: "a.exe" }))).not.toBe(
      resultCacheArtifactKey(artifactFromBytes("x", { filename: "b.exe" })),
    );
  });

  it("is off with CACHE_TTL_SECONDS=0: the multi-engine alone", async () => {
    const { running, settings, multi } = eicarEngine({ CACHE_TTL_SECONDS: "0" });
    const cache = await createResultCache(multi, running, settings, {
      logger: quiet,
      reloading: () => false,
      redisSeal: () => {
        throw new Error("not in queue mode");
      },
    });
    expect(cache.where).toBe("off");
    expect(cache.scanner).toBe(multi);
  });

  it("answers a repeat from memory, counts its lookups, and is bypassed while a reload runs", async () => {
    const { running, settings, multi } = eicarEngine({ CACHE_TTL_SECONDS: "60" });
    const lookups: string[] = [];
    const metrics = {
      cacheHits: { inc: () => void lookups.push("hit") },
      cacheMisses: { inc: () => void lookups.push("miss") },
    } as unknown as EngineMetrics;
    let reloading = false;
    const cache = await createResultCache(multi, running, settings, {
      logger: quiet,
      metrics,
      reloading: () => reloading,
      redisSeal: () => {
        throw new Error("not in queue mode");
      },
    });
    expect(cache.where).toBe("memory");
    const scanEicar = async () => {
      const result = await cache.scanner.scan(artifactFromBytes(eicarBytes()));
      await new Promise((resolve) => setImmediate(resolve)); // the store is not awaited
      return result;
    };
    await scanEicar();
    expect((await scanEicar()).metadata).toMatchObject({ cache: { hit: true } });
    expect(lookups).toEqual(["miss", "hit"]);
    reloading = true;
    expect((await scanEicar()).metadata).not.toHaveProperty("cache");
    expect(lookups).toEqual(["miss", "hit"]);
    await cache.close();
  });
});
