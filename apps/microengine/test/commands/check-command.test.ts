import { Writable } from "node:stream";
import { createEicarScanner, defineScanner } from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import { describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import type { EngineBackends } from "../../src/backends/build-backends.js";
import { scannerWithCoverage } from "../../src/backends/signature-coverage.js";
import { checkEngine, verdictLine } from "../../src/commands/check-command.js";
import type { SignatureCoverage } from "../../src/protocol/coverage.js";

/** `check` on one EICAR backend stating `coverage`; resolves its outcome and what it printed. */
async function checked(coverage: SignatureCoverage, scanner = createEicarScanner()) {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const backend: EngineBackend = {
    name: scanner.name,
    scanner,
    status: { name: scanner.name, running: true, reason: "test" },
    health: async () => ({ ok: true }),
    coverage: () => coverage,
  };
  const multi = createMultiScanner([scanner], { name: "microengine" });
  const backends = {
    scanner: scannerWithCoverage(multi, [backend]),
    multi,
    cache: "off",
    running: [backend],
    statuses: [backend.status],
    reload: async () => true,
    dispose: async () => {},
  } satisfies EngineBackends;
  try {
    return { healthy: await checkEngine(backends, out), text };
  } finally {
    await multi.close?.();
  }
}

describe("check's last line", () => {
  it("test-signature engine: passes, but says 'engine working, test signatures only', not 'engine healthy'", async () => {
    const { healthy, text } = await checked("test-signatures");
    expect(healthy).toBe(true);
    expect(text).toMatch(/^PASS benign file: benign/m);
    expect(text.trimEnd().split("\n").at(-1)).toBe(
      "engine working, test signatures only: benign answers bid the minimum",
    );
    expect(text).not.toMatch(/engine healthy/);
  });

  it("real-coverage engine: engine healthy", async () => {
    const { healthy, text } = await checked("signatures");
    expect(healthy).toBe(true);
    expect(text.trimEnd().split("\n").at(-1)).toBe("engine healthy");
  });

  it("a failing engine is NOT healthy whatever its coverage", async () => {
    const blind = defineScanner({
      name: "blind",
      scan: async () => ({ verdict: "benign", confidence: 1, metadata: { malware_family: "" } }),
    });
    const { healthy, text } = await checked("signatures", blind);
    expect(healthy).toBe(false);
    expect(text).toMatch(/^FAIL EICAR: benign/m);
    expect(text.trimEnd().split("\n").at(-1)).toBe("engine NOT healthy");
    expect(verdictLine(false, "test-signatures")).toBe("engine NOT healthy");
  });
});
