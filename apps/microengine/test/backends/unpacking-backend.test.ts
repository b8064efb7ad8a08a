import { gzipSync } from "node:zlib";
import {
  artifactFromBytes,
  createEicarScanner,
  defineScanner,
  eicarBytes,
  type Scanner,
} from "@engine/core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import { buildBackends } from "../../src/backends/build-backends.js";
import { resultCacheOptionsKey } from "../../src/backends/result-cache.js";
import {
  unpackCacheKey,
  unpackLimitsOf,
  withUnpacking,
} from "../../src/backends/unpacking-backend.js";
import { tarArchive } from "../../src/commands/check-archives.js";
import { loadConfig } from "../../src/config/config.js";

const quiet = pino({ level: "silent" });
const eicarTarGz = () =>
  artifactFromBytes(gzipSync(tarArchive([{ name: "eicar.com", data: eicarBytes() }])), {
    filename: "eicar.tar.gz",
  });
const deadline = () => ({ deadline: Date.now() + 10_000 });

function backendOf(scanner: Scanner): EngineBackend {
  return {
    name: scanner.name,
    scanner,
    status: { name: scanner.name, running: true, reason: "test" },
    health: async () => ({ ok: true }),
  };
}

describe("a backend seeing inside containers (UNPACK)", () => {
  it("is wrapped when UNPACK is on: same name, members scanned, the member path in metadata.unpack", async () => {
    const eicar = backendOf(createEicarScanner());
    const plain = await eicar.scanner.scan(eicarTarGz(), deadline());
    expect(plain.verdict).toBe("benign");
    const wrapped = withUnpacking(eicar, loadConfig({}));
    expect(wrapped.name).toBe(eicar.name);
    expect(wrapped.scanner.name).toBe(eicar.scanner.name);
    expect(wrapped.unpacks).toBe(true);
    const inside = await wrapped.scanner.scan(eicarTarGz(), deadline());
    expect(inside.verdict).toBe("malicious");
    expect(inside.metadata.unpack).toMatchObject({
      detected_in: "eicar.tar.gz!/eicar.tar", // EICAR is plain in the tar
    });
    // UNPACK=false: the backend as it is.
    expect(withUnpacking(eicar, loadConfig({ UNPACK: "false" }))).toBe(eicar);
  });

  it("walks within the UNPACK_MAX_* limits: past them, unknown with SKIPPED:LIMITS", async () => {
    const limits = unpackLimitsOf(loadConfig({ UNPACK_MAX_DEPTH: "0" }));
    expect(limits).toMatchObject({ maxDepth: 0, maxMembers: 10_000 });
    const shallow = withUnpacking(
      backendOf(createEicarScanner()),
      loadConfig({ UNPACK_MAX_DEPTH: "0" }),
    );
    const result = await shallow.scanner.scan(eicarTarGz(), deadline());
    expect(result.verdict).toBe("unknown");
    expect(result.metadata.comments?.[0]).toBe("SKIPPED:LIMITS");
  });

  it("closes the backend's scanner with it, even when no scan ever set the wrapper up", async () => {
    let closed = 0;
    const inner = defineScanner({
      name: "inner",
      setup: async () => {},
      close: async () => {
        closed += 1;
      },
      scan: async () => ({ verdict: "benign", confidence: 1, metadata: { malware_family: "" } }),
    });
    await inner.setup?.(); // the backend set itself up at build
    const wrapped = withUnpacking(backendOf(inner), loadConfig({}));
    await wrapped.scanner.close?.();
    expect(closed).toBe(1);
  });

  it("enters the result cache's key: on or off, each limit, @engine/unpack's version", () => {
    const running = [backendOf(createEicarScanner())];
    const key = (environment: Record<string, string>) =>
      resultCacheOptionsKey(running, loadConfig(environment));
    const keys = new Set([
      key({}),
      key({ UNPACK: "false" }),
      key({ UNPACK_MAX_DEPTH: "5" }),
      key({ UNPACK_MAX_MEMBERS: "5" }),
      key({ UNPACK_MAX_MEMBER_BYTES: "5" }),
      key({ UNPACK_MAX_TOTAL_BYTES: "5" }),
    ]);
    expect(keys.size).toBe(6);
    expect(key({ UNPACK: "true" })).toBe(key({}));
    expect(JSON.stringify(unpackCacheKey(loadConfig({})))).toMatch(/"unpack":"\d+\.\d+\.\d+"/);
  });

  it("wraps YARA and not EICAR when the engine is built, and neither with UNPACK=false", async () => {
    const built = await buildBackends(
      loadConfig({ ENGINE_BACKENDS: "eicar,yara", YARA_ENGINE: "wasm" }),
      quiet,
    );
    try {
      const unpacking = built.running.map((backend) => [backend.name, backend.unpacks ?? false]);
      expect(unpacking).toEqual([
        ["eicar", false],
        ["yara", true],
      ]);
      // The banner says so.
      const reasons = Object.fromEntries(
        built.statuses.map((status) => [status.name, status.reason]),
      );
      expect(reasons.yara).toMatch(/; inside containers: @engine\/unpack \(UNPACK\)$/);
      expect(reasons.eicar).not.toMatch(/inside containers/);
      const result = await built.scanner.scan(eicarTarGz(), deadline());
      const yara = result.metadata.backends?.find((backend) => backend.name === "yara");
      expect(yara?.verdict).toBe("malicious");
      expect(yara?.metadata?.unpack).toMatchObject({
        detected_in: "eicar.tar.gz!/eicar.tar", // EICAR is plain in the tar
      });
    } finally {
      await built.dispose();
    }
    const off = await buildBackends(
      loadConfig({ ENGINE_BACKENDS: "eicar,yara", YARA_ENGINE: "wasm", UNPACK: "false" }),
      quiet,
    );
    try {
      expect(off.running.some((backend) => backend.unpacks)).toBe(false);
      expect(off.statuses.some((status) => status.reason.includes("inside containers"))).toBe(
        false,
      );
      expect((await off.scanner.scan(eicarTarGz(), deadline())).verdict).toBe("benign");
    } finally {
      await off.dispose();
    }
  });
});
