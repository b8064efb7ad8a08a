import type { Socket } from "node:net";
import { artifactFromBytes, BackendUnavailableError } from "@engine/core";
import { afterEach, describe, expect, it } from "vitest";
import { type ClamdClient, createClamavScanner } from "../src/index.js";
import { decodeInstreamFrames } from "../src/instream-framing.js";
import { type FakeClamd, startFakeClamd } from "./fake-clamd.js";

/** These scripted clamds speak INSTREAM: bytes in memory are streamed, not passed as memory files. */
const streamed = { memoryFileMaxBytes: 0 } as const;

// verifyAlerts (second audit, item 3): a clamd checked at start can come back without its alert
// settings; its clean answers stand only after a probe of its current generation.
const fakes: FakeClamd[] = [];
afterEach(async () => {
  for (const fake of fakes.splice(0)) await fake[Symbol.asyncDispose]();
});

/**
 * A scripted clamd (IDSESSION + INSTREAM, VERSION, PING): a zip is answered with the alert
 * when `alerts.on` (encrypted: bit 0 of its first entry's flags), else `OK`, as clamd without
 * the settings does; anything else is `OK`.
 */
async function scriptedClamd(alerts: { on: boolean }, scanned: string[]): Promise<FakeClamd> {
  const states = new WeakMap<Socket, number>();
  const fake = await startFakeClamd((socket, received) => {
    let consumed = states.get(socket) ?? 0;
    let rest = received.subarray(consumed);
    for (const command of ["zPING\0", "zVERSION\0"]) {
      if (rest.toString("latin1") === command) {
        socket.end(command === "zPING\0" ? "PONG\0" : "ClamAV 1.4.6\0");
        return;
      }
    }
    if (rest.subarray(0, 11).toString() === "zIDSESSION\0") {
      consumed += 11;
      rest = rest.subarray(11);
    }
    let request = Number((socket as { request?: number }).request ?? 0);
    while (rest.subarray(0, 10).toString() === "zINSTREAM\0") {
      const upload = decodeInstreamFrames(rest.subarray(10));
      if (!upload) break;
      request += 1;
      consumed += rest.length - upload.rest.length;
      const data = Buffer.concat(upload.chunks);
      const zip = data.subarray(0, 2).toString("latin1") === "PK";
      const encrypted = zip && (data.readUInt16LE(6) & 1) === 1;
      scanned.push(zip ? (encrypted ? "encrypted probe" : "nested probe") : "scan");
      const reply =
        !zip || !alerts.on
          ? "stream: OK"
          : encrypted
            ? "stream: Heuristics.Encrypted.Zip FOUND"
            : "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND";
      socket.write(`${request}: ${reply}\0`);
      rest = Buffer.from(upload.rest.buffer, upload.rest.byteOffset, upload.rest.byteLength);
    }
    (socket as { request?: number }).request = request;
    states.set(socket, consumed);
  });
  fakes.push(fake);
  return fake;
}

describe("createClamavScanner({ verifyAlerts })", () => {
  it("probes once per generation, trusts OK after a passing probe, and refuses it after a reconnect to a clamd without the alerts", async () => {
    const alerts = { on: true };
    const scanned: string[] = [];
    const clamd = await scriptedClamd(alerts, scanned);
    const scanner = createClamavScanner({
      socket: clamd.socketPath,
      ...streamed,
      verifyAlerts: true,
    });
    try {
      const clean = () => scanner.scan(artifactFromBytes("a clean text"));
      expect((await clean()).verdict).toBe("benign");
      expect(scanned).toEqual(["scan", "encrypted probe", "nested probe"]);
      expect(scanner.alertStatus()).toEqual({ state: "verified", problems: [] });
      // Kept session: the same generation, no second probe.
      expect((await clean()).verdict).toBe("benign");
      expect(scanned.filter((entry) => entry !== "scan")).toHaveLength(2);
      // clamd restarts without the settings: every connection drops.
      alerts.on = false;
      for (const socket of clamd.open) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 20));
      const refused = await clean().catch((error: unknown) => error);
      expect(BackendUnavailableError.isInstance(refused)).toBe(true);
      expect((refused as BackendUnavailableError).publicMessage).toBe(
        "clamd lacks its alert settings: its clean answers are not trusted",
      );
      expect(scanner.alertStatus()?.state).toBe("failing");
      // Refused while the generation lasts, without probing again per scan.
      const probes = scanned.filter((entry) => entry !== "scan").length;
      await expect(clean()).rejects.toThrow(/not trusted/);
      expect(scanned.filter((entry) => entry !== "scan")).toHaveLength(probes);
    } finally {
      await scanner.close?.();
    }
  });

  it("counts every new scan connection as a new generation (another daemon behind the address), not only the first after none", async () => {
    const alerts = { on: true };
    const scanned: string[] = [];
    const clamd = await scriptedClamd(alerts, scanned);
    const scanner = createClamavScanner({
      socket: clamd.socketPath,
      ...streamed,
      verifyAlerts: true,
    });
    try {
      expect((await scanner.scan(artifactFromBytes("one"))).verdict).toBe("benign");
      const before = (scanner.client as ClamdClient).daemonGeneration;
      // Two scans at once: the kept session serves one, a new connection the other.
      alerts.on = false;
      const both = await Promise.allSettled([
        scanner.scan(artifactFromBytes("two")),
        scanner.scan(artifactFromBytes("three")),
      ]);
      expect((scanner.client as ClamdClient).daemonGeneration).toBeGreaterThan(before);
      // The second connection began a generation: its clean answer waited for a probe, which
      // failed; nothing was answered benign after the daemon changed.
      expect(both.some((outcome) => outcome.status === "rejected")).toBe(true);
    } finally {
      await scanner.close?.();
    }
  });

  it("is off by default: OK is benign without a probe", async () => {
    const scanned: string[] = [];
    const clamd = await scriptedClamd({ on: false }, scanned);
    const scanner = createClamavScanner({ socket: clamd.socketPath, ...streamed });
    try {
      expect((await scanner.scan(artifactFromBytes("x"))).verdict).toBe("benign");
      expect(scanned).toEqual(["scan"]);
      expect(scanner.alertStatus()).toBeUndefined();
    } finally {
      await scanner.close?.();
    }
  });
});
