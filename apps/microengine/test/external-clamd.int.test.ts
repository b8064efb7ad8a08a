import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startManagedClamd } from "@engine/clamav/managed";
import { clamdAlertsOff } from "@engine/clamav/testing";
import { eicarBytes } from "@engine/core";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";
import { buildBackends } from "../src/engine-backends.js";

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
