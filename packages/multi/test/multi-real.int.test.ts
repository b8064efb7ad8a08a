import { createServer, type Server, type Socket } from "node:net";
import { Readable } from "node:stream";
import { createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import { sampleSignatures, signatureSamples } from "@engine/clamav/testing";
import { artifactFromBytes, artifactFromStream, eicarBytes } from "@engine/core";
import { cleanBytes } from "@engine/core/testing";
import { createYaraScanner } from "@engine/yara";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMultiScanner, type MultiScanner } from "../src/index.js";

// A rule only YARA knows: ClamAV's shipped signatures do not match this marker.
const yaraOnly =
  'rule Yara_Only_Marker { meta: malware_family = "YaraOnly.Test" strings: $a = "YARA-ONLY-MARKER-51C2" condition: $a }';
const eicarRule = `rule Eicar { meta: malware_family = "EICAR-Test-File" strings: $a = { ${[...eicarBytes()].map((byte) => byte.toString(16).padStart(2, "0")).join(" ")} } condition: $a }`;

let clamd: ManagedClamd;
let multi: MultiScanner;
beforeAll(async () => {
  clamd = await startManagedClamd();
  multi = createMultiScanner([
    createClamavScanner({
      ...clamd.clientOptions("tcp"),
      signaturesVersion: clamd.signaturesVersion,
    }),
    createYaraScanner({
      rules: { test: `${yaraOnly}\n${eicarRule}` },
      workers: 2,
      onDiagnostics: () => {},
    }),
  ]);
  await multi.setup?.();
});
afterAll(async () => {
  await multi?.close?.();
  await clamd?.[Symbol.asyncDispose]();
});

const verdictsOf = (scan: { metadata: Record<string, unknown> }) =>
  Object.fromEntries(
    (scan.metadata.backends as Array<{ name: string; verdict: string }>).map((backend) => [
      backend.name,
      backend.verdict,
    ]),
  );

describe("ClamAV + YARA", () => {
  it("calls EICAR malicious, with both backends agreeing", async () => {
    const scan = await multi.scan(artifactFromBytes(eicarBytes()));
    expect(scan.verdict).toBe("malicious");
    expect(verdictsOf(scan)).toEqual({ clamav: "malicious", yara: "malicious" });
  });

  it("calls a clean file benign", async () => {
    const scan = await multi.scan(artifactFromBytes(cleanBytes("multi")));
    expect(scan).toMatchObject({ verdict: "benign", confidence: 1 });
    expect(verdictsOf(scan)).toEqual({ clamav: "benign", yara: "benign" });
  });

  it("detects a file only YARA knows", async () => {
    const scan = await multi.scan(artifactFromBytes("header YARA-ONLY-MARKER-51C2 trailer"));
    expect(scan).toMatchObject({
      verdict: "malicious",
      metadata: { malware_family: "YaraOnly.Test" },
    });
    expect(verdictsOf(scan)).toEqual({ clamav: "benign", yara: "malicious" });
  });

  it("detects a file only ClamAV knows", async () => {
    const scan = await multi.scan(artifactFromBytes(signatureSamples().ndb));
    expect(scan).toMatchObject({
      verdict: "malicious",
      metadata: { malware_family: sampleSignatures.ndb },
    });
    expect(verdictsOf(scan)).toEqual({ clamav: "malicious", yara: "benign" });
  });

  it("shares one unsized stream between both backends", async () => {
    const scan = await multi.scan(
      artifactFromStream(Readable.from([Buffer.from("prefix "), eicarBytes()])),
    );
    expect(verdictsOf(scan)).toEqual({ clamav: "malicious", yara: "malicious" });
  });

  it("still answers by the deadline with YARA's verdict when clamd is killed mid-run", async () => {
    const clamav = createClamavScanner(clamd.clientOptions("tcp"));
    await clamav.setup?.();
    // clamd dies while the ClamAV backend is streaming this artifact to it.
    const killing = Object.assign(Object.create(clamav), {
      scan: (...arguments_: Parameters<typeof clamav.scan>) => {
        setTimeout(() => void clamd.kill(), 20);
        return clamav.scan(...arguments_);
      },
    });
    const local = createMultiScanner([killing, multi.backends[1] as MultiScanner], {
      name: "multi-kill",
    });
    // 48 MB: clamd needs a while to receive and scan it, so it dies mid-run.
    const large = Buffer.concat([
      Buffer.alloc(48 * 1024 * 1024, 0x61),
      Buffer.from("YARA-ONLY-MARKER-51C2"),
    ]);
    const tail = artifactFromBytes(large);
    const started = Date.now();
    const scan = await local.scan(tail, { deadline: Date.now() + 5_000 });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(scan.verdict).toBe("malicious");
    const entry = (scan.metadata.backends as Array<{ name: string; error_code?: string }>).find(
      (backend) => backend.name === "clamav",
    );
    expect(entry?.error_code).toBe("BACKEND_UNAVAILABLE");
    expect(verdictsOf(scan).yara).toBe("malicious");
  });
});

describe("ClamAV stopped before the first scan", () => {
  // A stand-in for a stopped clamd: it accepts connections and never answers, so the real
  // client's setup (PING, with connectTimeoutMs + 1 s to answer: 3 s) hangs until its timeout.
  let silent: Server;
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    silent = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent?.close(resolve));
  });

  it("answers by ClamAV's budget with YARA's verdict and ClamAV failed, and closes promptly", async () => {
    const address = silent.address();
    if (address === null || typeof address === "string") throw new Error("no TCP address");
    const yara = createYaraScanner({
      rules: { test: yaraOnly },
      workers: 1,
      onDiagnostics: () => {},
    });
    await yara.setup?.(); // YARA's own start-up is not what this test times
    const local = createMultiScanner(
      [createClamavScanner({ host: "127.0.0.1", port: address.port }), yara],
      { name: "multi-stopped", backendTimeoutMs: { clamav: 1000 } },
    );
    let started = Date.now();
    const detected = await local.scan(artifactFromBytes("header YARA-ONLY-MARKER-51C2 trailer"), {
      deadline: Date.now() + 3_000,
    });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(detected).toMatchObject({
      verdict: "malicious",
      metadata: { malware_family: "YaraOnly.Test" },
    });
    expect(verdictsOf(detected)).toEqual({ clamav: "unknown", yara: "malicious" });
    const entry = (detected.metadata.backends as Array<{ name: string; error?: string }>)[0];
    expect(entry).toMatchObject({
      name: "clamav",
      error_code: "SCAN_TIMEOUT",
      error: "a scanning backend did not finish setting up in time",
    });
    started = Date.now();
    const clean = await local.scan(artifactFromBytes(cleanBytes("stopped")), {
      deadline: Date.now() + 10_000,
    });
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(clean).toMatchObject({ verdict: "unknown", confidence: 0 });
    expect(verdictsOf(clean)).toEqual({ clamav: "unknown", yara: "benign" });
    started = Date.now();
    await local.close?.();
    expect(Date.now() - started).toBeLessThan(500);
  });
});
