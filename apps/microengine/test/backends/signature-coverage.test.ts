import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromBytes, eicarBytes, type Scanner, type ScanResult } from "@engine/core";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import { buildBackends } from "../../src/backends/build-backends.js";
import {
  engineCoverage,
  resultCoverage,
  scannerWithCoverage,
  withCoverage,
} from "../../src/backends/signature-coverage.js";
import { loadConfig } from "../../src/config/config.js";
import type { SignatureCoverage } from "../../src/protocol/coverage.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const saying = (coverage?: SignatureCoverage): Pick<EngineBackend, "coverage"> =>
  coverage ? { coverage: () => coverage } : {};
const benign: ScanResult = { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
const malicious: ScanResult = {
  verdict: "malicious",
  confidence: 1,
  metadata: { malware_family: "EICAR" },
};

describe("the engine's coverage", () => {
  it("is test-signatures only when every backend has test signatures (or none runs)", () => {
    expect(engineCoverage([])).toBe("test-signatures");
    expect(engineCoverage([saying("test-signatures"), saying("test-signatures")])).toBe(
      "test-signatures",
    );
    expect(engineCoverage([saying("test-signatures"), saying("signatures")])).toBe("signatures");
    // A backend that does not say (a third-party module) counts as real signatures.
    expect(engineCoverage([saying("test-signatures"), saying()])).toBe("signatures");
  });

  it("test-signature engine: a benign answer's confidence is 0, a malicious one's kept; both say test-signatures", () => {
    expect(withCoverage(benign, "test-signatures")).toEqual({
      verdict: "benign",
      confidence: 0,
      metadata: { malware_family: "", coverage: "test-signatures" },
    });
    expect(withCoverage(malicious, "test-signatures")).toMatchObject({
      confidence: 1,
      metadata: { malware_family: "EICAR", coverage: "test-signatures" },
    });
  });

  it("real-coverage engine: a benign answer keeps its confidence and says signatures", () => {
    expect(withCoverage(benign, "signatures")).toEqual({
      verdict: "benign",
      confidence: 1,
      metadata: { malware_family: "", coverage: "signatures" },
    });
  });

  it("states the coverage of the moment of each answer (a reload may change it), and passes the rest through", async () => {
    let coverage: SignatureCoverage = "test-signatures";
    const inner = {
      name: "inner",
      signaturesVersion: "v1",
      scan: async () => benign,
      [Symbol.asyncDispose]: async () => {},
    } satisfies Scanner;
    const scanner = scannerWithCoverage(inner, [{ name: "inner", coverage: () => coverage }]);
    expect(scanner.name).toBe("inner");
    expect(scanner.signaturesVersion).toBe("v1");
    const artifact = artifactFromBytes(new Uint8Array(1));
    expect((await scanner.scan(artifact)).metadata.coverage).toBe("test-signatures");
    coverage = "signatures";
    inner.signaturesVersion = "v2";
    expect(await scanner.scan(artifact)).toMatchObject({
      confidence: 1,
      metadata: { coverage: "signatures" },
    });
    expect(scanner.signaturesVersion).toBe("v2");
  });
});

describe("the coverage behind one answer", () => {
  const clamav = { name: "clamav", coverage: (): SignatureCoverage => "signatures" };
  const yara = { name: "yara", coverage: (): SignatureCoverage => "test-signatures" };
  const opinion = (name: string, verdict: ScanResult["verdict"]) => ({
    name,
    verdict,
    confidence: verdict === "unknown" ? 0 : 1,
    malware_family: "",
    duration_ms: 1,
  });
  const answered = (...opinions: ReturnType<typeof opinion>[]): ScanResult => ({
    ...benign,
    metadata: { malware_family: "", backends: opinions },
  });

  it("is signatures when a backend with real signatures answered, test-signatures when only test ones did", () => {
    const running = [clamav, yara];
    expect(
      resultCoverage(answered(opinion("clamav", "benign"), opinion("yara", "benign")), running),
    ).toBe("signatures");
    // ClamAV (the real database) could not scan: the benign rests on YARA's bundled rule.
    expect(
      resultCoverage(answered(opinion("clamav", "unknown"), opinion("yara", "benign")), running),
    ).toBe("test-signatures");
    expect(resultCoverage(benign, running)).toBe("signatures"); // no per-backend entries
  });

  it("lowers a benign answer whose real backend could not scan to confidence 0 (the minimum bid)", async () => {
    const inner = {
      name: "multi",
      scan: async () => answered(opinion("clamav", "unknown"), opinion("yara", "benign")),
      [Symbol.asyncDispose]: async () => {},
    } satisfies Scanner;
    const result = await scannerWithCoverage(inner, [clamav, yara]).scan(
      artifactFromBytes(new Uint8Array(1)),
    );
    expect(result).toMatchObject({ confidence: 0, metadata: { coverage: "test-signatures" } });
  });
});

describe("the coverage of the engine's own backends (built from the settings)", () => {
  async function engine(environment: Record<string, string>) {
    const backends = await buildBackends(
      loadConfig({ YARA_ENGINE: "wasm", ...environment }),
      pino({ level: "silent" }),
    );
    cleanups.push(() => backends.dispose());
    return backends;
  }
  const scan = (backends: Awaited<ReturnType<typeof engine>>, bytes: Uint8Array) =>
    backends.scanner.scan(artifactFromBytes(bytes), { deadline: Date.now() + 10_000 });
  const text = new TextEncoder().encode("A plain text file.\n");

  it("test-signature engine (eicar; yara with the bundled EICAR rule): benign at confidence 0, EICAR kept", async () => {
    for (const environment of [{ ENGINE_BACKENDS: "eicar" }, { ENGINE_BACKENDS: "yara,eicar" }]) {
      const backends = await engine(environment);
      expect(engineCoverage(backends.running)).toBe("test-signatures");
      expect(await scan(backends, text)).toMatchObject({
        verdict: "benign",
        confidence: 0,
        metadata: { coverage: "test-signatures" },
      });
      expect(await scan(backends, eicarBytes())).toMatchObject({
        verdict: "malicious",
        confidence: 1,
        metadata: { coverage: "test-signatures" },
      });
    }
  });

  it("real-coverage engine (yara with RULES_DIR rules): benign keeps its confidence", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-coverage-"));
    cleanups.push(() => rm(directory, { recursive: true, force: true }));
    await writeFile(
      join(directory, "word.yar"),
      'rule Word { strings: $a = "WORD" condition: $a }',
    );
    const backends = await engine({ ENGINE_BACKENDS: "yara,eicar", RULES_DIR: directory });
    expect(engineCoverage(backends.running)).toBe("signatures");
    expect(await scan(backends, text)).toMatchObject({
      verdict: "benign",
      confidence: 1,
      metadata: { coverage: "signatures" },
    });
    const yara = backends.running.find((backend) => backend.name === "yara");
    expect(await yara?.health()).toMatchObject({ ok: true, coverage: "signatures" });
  });
});
