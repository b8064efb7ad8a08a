import { Writable } from "node:stream";
import {
  artifactFromBytes,
  createEicarScanner,
  defineScanner,
  eicarBytes,
  type Scanner,
} from "@engine/core";
import { createMultiScanner } from "@engine/multi";
import { unpack } from "@engine/unpack";
import { describe, expect, it } from "vitest";
import type { EngineBackend } from "../../src/backends/backend-kind.js";
import { withUnpacking } from "../../src/backends/unpacking-backend.js";
import { checkArchives, tarArchive } from "../../src/commands/check-archives.js";
import { loadConfig } from "../../src/config/config.js";

function backendOf(scanner: Scanner): EngineBackend {
  return {
    name: scanner.name,
    scanner,
    status: { name: scanner.name, running: true, reason: "test" },
    health: async () => ({ ok: true }),
  };
}

/** Runs the archive checks on these backends; resolves their outcome and what they printed. */
async function checked(running: EngineBackend[]) {
  let text = "";
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  const scanner = createMultiScanner(
    running.map((backend) => backend.scanner),
    { name: "microengine" },
  );
  try {
    return { healthy: await checkArchives({ scanner, running }, out), text };
  } finally {
    await scanner.close?.();
  }
}

describe("check's archive cases", () => {
  it("writes a tar that @engine/unpack reads back", async () => {
    const tar = tarArchive([{ name: "eicar.com", data: eicarBytes() }]);
    const members: string[] = [];
    for await (const event of unpack(artifactFromBytes(tar, { filename: "t.tar" })))
      if (event.kind === "member") members.push(event.member.path);
    expect(members).toEqual(["t.tar!/eicar.com"]);
  });

  it("passes when every unpacking backend finds EICAR in the tar.gz and calls the benign one benign", async () => {
    const { healthy, text } = await checked([
      withUnpacking(backendOf(createEicarScanner()), loadConfig({})),
    ]);
    expect(healthy).toBe(true);
    expect(text).toMatch(
      /^PASS EICAR in a tar\.gz: malicious \(expected malicious by every unpacking backend\) eicar=malicious\(in eicar\.tar\.gz!\/eicar\.tar\)$/m,
    );
    expect(text).toMatch(/^PASS benign tar\.gz: benign /m);
    expect(text).toMatch(
      /^PASS EICAR in a zip: malicious .* eicar=malicious\(in eicar\.zip!\/tools\/eicar\.com\)$/m,
    );
    expect(text).toMatch(
      /^PASS EICAR in a brotli stream .*: malicious .* eicar=malicious\(in eicar\.com\.br!\/eicar\.com\)$/m,
    );
  });

  it("fails when an unpacking backend misses it, even when another backend finds it", async () => {
    // Finds EICAR alone, claims to unpack, but never looks inside.
    const shallow = defineScanner({
      name: "shallow",
      scan: async (artifact) => {
        const found = Buffer.from(await artifact.bytes()).equals(eicarBytes());
        return found
          ? { verdict: "malicious", confidence: 1, metadata: { malware_family: "EICAR" } }
          : { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const { healthy, text } = await checked([
      withUnpacking(backendOf(createEicarScanner()), loadConfig({})),
      { ...backendOf(shallow), unpacks: true },
    ]);
    expect(healthy).toBe(false);
    expect(text).toMatch(/^FAIL EICAR in a tar\.gz: malicious .* shallow=benign$/m);
  });

  it("does not hold a backend that does not detect EICAR at all to find it in an archive", async () => {
    const blind = defineScanner({
      name: "blind",
      scan: async () => ({ verdict: "benign", confidence: 1, metadata: { malware_family: "" } }),
    });
    const { healthy, text } = await checked([
      withUnpacking(backendOf(createEicarScanner()), loadConfig({})),
      withUnpacking(backendOf(blind), loadConfig({})),
    ]);
    expect(healthy).toBe(true);
    expect(text).toMatch(/^PASS EICAR in a tar\.gz: malicious .* blind=benign$/m);
    // None that unpacks detects EICAR: nothing to hold to the malicious case.
    const alone = await checked([withUnpacking(backendOf(blind), loadConfig({}))]);
    expect(alone.healthy).toBe(true);
    expect(alone.text).toMatch(
      /^SKIP EICAR in a tar\.gz: no backend that sees inside containers detects EICAR itself$/m,
    );
    expect(alone.text).toMatch(/^PASS benign tar\.gz: benign /m);
  });

  it("says it checks no archive when no backend unpacks (UNPACK=false)", async () => {
    const { healthy, text } = await checked([
      withUnpacking(backendOf(createEicarScanner()), loadConfig({ UNPACK: "false" })),
    ]);
    expect(healthy).toBe(true);
    expect(text).toMatch(/archives: not checked, no backend sees inside containers/);
  });
});
