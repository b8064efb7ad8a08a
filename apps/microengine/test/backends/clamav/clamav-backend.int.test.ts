import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startManagedClamd } from "@engine/clamav/managed";
import { clamdAlertsOff, zipArchive } from "@engine/clamav/testing";
import { artifactFromBytes, eicarBytes } from "@engine/core";
import { Redis } from "ioredis";
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { buildBackends } from "../../../src/backends/build-backends.js";
import { ConfigError, loadConfig } from "../../../src/config/config.js";
import { startRedis } from "../../harness/redis.js";

// A clamd the operator runs (CLAMD_*), as the engine meets it at start.
const quiet = pino({ level: "silent" });

describe("a clamd given by CLAMD_*", () => {
  it("is refused at start when it answers OK for an encrypted zip or a deep nest, unless explicitly allowed", async () => {
    await using bare = await startManagedClamd({ tcp: false, config: clamdAlertsOff });
    const settings = { CLAMD_SOCKET: bare.socketPath ?? "", ENGINE_BACKENDS: "yara,clamav" };
    const refusal = await buildBackends(loadConfig(settings), quiet).catch(
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(ConfigError);
    expect((refusal as Error).message).toMatch(/AlertEncryptedArchive yes/);
    expect((refusal as Error).message).toMatch(/AlertExceedsMax yes/);
    expect((refusal as Error).message).toMatch(/INSECURE_CLAMD_WITHOUT_ALERTS=true/);
    const warnings: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void warnings.push(line) });
    const allowed = await buildBackends(
      loadConfig({ ...settings, INSECURE_CLAMD_WITHOUT_ALERTS: "true" }),
      logger,
    );
    await allowed.dispose();
    expect(warnings.join("\n")).toMatch(/INSECURE \(INSECURE_CLAMD_WITHOUT_ALERTS\)/);
  });

  it("starts with one that has the alert settings", async () => {
    await using good = await startManagedClamd({ tcp: false });
    const backends = await buildBackends(
      loadConfig({ CLAMD_SOCKET: good.socketPath ?? "" }),
      quiet,
    );
    expect(backends.statuses.find((status) => status.name === "clamav")?.running).toBe(true);
    await backends.dispose();
  });

  it("starts a pool with one daemon down (probing the others), and scans through the live one", async () => {
    await using good = await startManagedClamd({ tcp: false });
    const backends = await buildBackends(
      loadConfig({ CLAMD_HOSTS: `${good.socketPath},/nonexistent/clamd.sock` }),
      quiet,
    );
    try {
      const { artifactFromBytes } = await import("@engine/core");
      const eicar = await backends.scanner.scan(artifactFromBytes(eicarBytes()), {
        deadline: Date.now() + 10_000,
      });
      expect(eicar.metadata.backends?.find((backend) => backend.name === "clamav")?.verdict).toBe(
        "malicious",
      );
    } finally {
      await backends.dispose();
    }
  });

  it("stays in, failing closed, when it is unreachable at start: unknown, never YARA's benign alone", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-no-clamd-"));
    try {
      const backends = await buildBackends(
        loadConfig({ CLAMD_SOCKET: join(directory, "clamd.sock") }),
        quiet,
      );
      try {
        const clamav = backends.statuses.find((status) => status.name === "clamav");
        expect(clamav?.reason).toMatch(/NOT reachable/);
        const { artifactFromBytes } = await import("@engine/core");
        const result = await backends.scanner.scan(artifactFromBytes("a clean text"), {
          deadline: Date.now() + 10_000,
        });
        expect(result.verdict).toBe("unknown");
        const eicar = await backends.scanner.scan(artifactFromBytes(eicarBytes()), {
          deadline: Date.now() + 10_000,
        });
        expect(eicar.verdict).toBe("malicious"); // YARA still detects
      } finally {
        await backends.dispose();
      }
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});

describe("ClamAV's coverage, as the engine meets it", () => {
  it("test-signature engine: a clamd with the shipped test signatures only (CLAMD_SOCKET) warns why, answers benign at confidence 0 with coverage test-signatures", async () => {
    await using shipped = await startManagedClamd({ tcp: false });
    const backends = await buildBackends(
      loadConfig({ CLAMD_SOCKET: shipped.socketPath ?? "", ENGINE_BACKENDS: "clamav" }),
      quiet,
    );
    try {
      const status = backends.statuses.find((line) => line.name === "clamav");
      expect(status?.reason).toMatch(/, ClamAV [0-9.]+ \(no official database\)/);
      expect(status?.warning).toBe(
        `ClamAV detects EICAR and test samples only: the clamd at ${shipped.socketPath} reports no official database (its VERSION names none): run freshclam where that clamd runs`,
      );
      const clamav = backends.running.find((backend) => backend.name === "clamav");
      expect(clamav?.coverage?.()).toBe("test-signatures");
      expect(await clamav?.health()).toMatchObject({ ok: true, coverage: "test-signatures" });
      const deadline = () => ({ deadline: Date.now() + 10_000 });
      expect(
        await backends.scanner.scan(artifactFromBytes("a clean text"), deadline()),
      ).toMatchObject({
        verdict: "benign",
        confidence: 0,
        metadata: { coverage: "test-signatures" },
      });
      expect(
        await backends.scanner.scan(artifactFromBytes(eicarBytes()), deadline()),
      ).toMatchObject({
        verdict: "malicious",
        metadata: { coverage: "test-signatures" },
      });
    } finally {
      await backends.dispose();
    }
  });
});

/** A password-protected zip of EICAR (made once: its encryption header is random). */
const encryptedEicarBytes = zipArchive([{ name: "eicar.com", data: eicarBytes() }], {
  password: "infected",
});

/** {@link encryptedEicarBytes} as an artifact with the sha256 the fetcher would compute. */
function encryptedEicar() {
  return artifactFromBytes(encryptedEicarBytes, {
    sha256: createHash("sha256").update(encryptedEicarBytes).digest("hex"),
  });
}

/** Rewrites a managed clamd's clamd.conf with the alert settings off (Debian's defaults). */
async function turnAlertsOff(directory: string): Promise<void> {
  const path = join(directory, "clamd.conf");
  const text = await readFile(path, "utf8");
  await writeFile(path, text.replace(/^(Alert(?:Encrypted\w*|ExceedsMax)) yes$/gm, "$1 no"));
}

describe("a clamd given by CLAMD_* is held to its alert settings for as long as it runs (second audit)", () => {
  it("item 3: restarted later without them, its OK for an encrypted zip is refused (unknown) and /readyz says why", async () => {
    await using clamd = await startManagedClamd({ tcp: false });
    const backends = await buildBackends(
      loadConfig({ CLAMD_SOCKET: clamd.socketPath ?? "", ENGINE_BACKENDS: "yara,clamav" }),
      quiet,
    );
    const clamavOf = (result: { metadata: { backends?: Array<{ name: string }> } }) =>
      result.metadata.backends?.find((backend) => backend.name === "clamav") as
        | Record<string, unknown>
        | undefined;
    const clamavBackend = backends.running.find((backend) => backend.name === "clamav");
    try {
      const deadline = () => ({ deadline: Date.now() + 20_000 });
      const before = await backends.scanner.scan(encryptedEicar(), deadline());
      expect(before.verdict).toBe("unknown");
      expect(clamavOf(before)?.reason).toBe("SKIPPED:ENCRYPTED");
      const clean = await backends.scanner.scan(artifactFromBytes("a clean text"), deadline());
      expect(clean.verdict).toBe("benign");
      // The operator's clamd comes back from an upgrade with Debian's default clamd.conf.
      await turnAlertsOff(clamd.directory);
      await clamd.restart();
      const after = await backends.scanner.scan(encryptedEicar(), deadline());
      expect(after.verdict).toBe("unknown");
      expect(clamavOf(after)).toMatchObject({
        error_code: "BACKEND_UNAVAILABLE",
        error: "clamd lacks its alert settings: its clean answers are not trusted",
      });
      const health = await clamavBackend?.health();
      expect(health).toMatchObject({ ok: false, alerts: "failing" });
      // Fixed and restarted: trusted again.
      await clamd.stop();
      const text = await readFile(join(clamd.directory, "clamd.conf"), "utf8");
      await writeFile(
        join(clamd.directory, "clamd.conf"),
        text.replace(/^(Alert(?:Encrypted\w*|ExceedsMax)) no$/gm, "$1 yes"),
      );
      await clamd.restart();
      expect(clamavOf(await backends.scanner.scan(encryptedEicar(), deadline()))?.reason).toBe(
        "SKIPPED:ENCRYPTED",
      );
      expect(
        (await backends.scanner.scan(artifactFromBytes("a clean text"), deadline())).verdict,
      ).toBe("benign");
      expect(await clamavBackend?.health()).toMatchObject({ ok: true, alerts: "verified" });
    } finally {
      await backends.dispose();
    }
  });

  it("item 4: a worker whose clamd lacks them (INSECURE_CLAMD_WITHOUT_ALERTS) never answers a worker that has them from the shared cache", async () => {
    const redis = await startRedis();
    await using bare = await startManagedClamd({ tcp: false, config: clamdAlertsOff });
    await using good = await startManagedClamd({ tcp: false });
    const shared = {
      QUEUE_URL: redis.url,
      QUEUE_NAME: "cache-alerts",
      QUEUE_SECRET: "cache-alerts-test-secret",
      ENGINE_BACKENDS: "clamav",
      // clamd's own answers: with UNPACK the engine sees the zip is encrypted itself, and even
      // the insecure worker answers unknown (nothing benign to cache).
      UNPACK: "false",
    };
    const insecure = await buildBackends(
      loadConfig({
        ...shared,
        CLAMD_SOCKET: bare.socketPath ?? "",
        INSECURE_CLAMD_WITHOUT_ALERTS: "true",
      }),
      quiet,
      { resultCache: true },
    );
    const careful = await buildBackends(
      loadConfig({ ...shared, CLAMD_SOCKET: good.socketPath ?? "" }),
      quiet,
      { resultCache: true },
    );
    try {
      const deadline = () => ({ deadline: Date.now() + 20_000 });
      // The insecure worker's clamd says OK: benign, and stored in the shared cache.
      expect((await insecure.scanner.scan(encryptedEicar(), deadline())).verdict).toBe("benign");
      // (The store is not awaited by the scan: wait until the entry is in Redis.)
      const reader = new Redis(redis.url);
      await vi.waitFor(async () =>
        expect(Number(await reader.get("{cache-alerts:result}:total"))).toBeGreaterThan(0),
      );
      reader.disconnect();
      const answer = await careful.scanner.scan(encryptedEicar(), deadline());
      expect(answer.verdict).toBe("unknown");
      expect(answer.metadata.cache).toBeUndefined(); // scanned, not answered from the cache
      expect(answer.metadata.backends?.[0]?.reason).toBe("SKIPPED:ENCRYPTED");
    } finally {
      await Promise.allSettled([insecure.dispose(), careful.dispose()]);
      await redis.dispose();
    }
  });
});
