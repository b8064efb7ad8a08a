import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { nestedZip, zipArchive } from "@engine/clamav/testing";
import { eicarBytes } from "@engine/core";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEngine, startEngine } from "../../src/commands/serve-engine.js";
import { loadConfig } from "../../src/config/config.js";
import { signBody } from "../../src/protocol/webhook-signature.js";
import { answerOf, type Collector, startCollector } from "../harness/engine.js";

// The embedded default (managed clamd + bundled YARA) behind serve, attacked with archives.
const run = promisify(execFile);
let engine: RunningEngine;
let collector: Collector;
let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-hidden-"));
  collector = await startCollector();
  engine = await startEngine(
    loadConfig({
      WEBHOOK_SECRET: "hidden",
      PORT: "0",
      ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true", // the collector is on loopback
      LOG_LEVEL: "silent",
    }),
    pino({ level: "silent" }),
  );
});
afterAll(async () => {
  await engine?.close();
  await collector?.close();
  await rm(directory, { recursive: true, force: true });
});

let nextId = 500;
async function answerFor(
  bytes: Buffer,
): Promise<{ verdict: string; bid: string; metadata: Record<string, unknown> }> {
  const id = nextId++;
  const body = JSON.stringify({
    id,
    artifact_type: "file",
    artifact_uri: `data:application/zip;base64,${bytes.toString("base64")}`,
    expiration: new Date(Date.now() + 15_000).toISOString(),
    response_url: `${collector.url}/answers/${id}`,
    phase: "assertion",
  });
  const response = await fetch(`${engine.url}/`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-polyswarm-event": "bounty",
      "x-polyswarm-signature": signBody("hidden", body),
    },
    body,
  });
  expect(response.status).toBe(202);
  const answer = await answerOf(collector, id, 14_000);
  return { ...answer, bid: /"bid":(\d+)/.exec(answer.text)?.[1] ?? "" };
}

async function zipWithPassword(data: Buffer): Promise<Buffer> {
  await writeFile(join(directory, "eicar.com"), data);
  await run("zip", [
    "-q",
    "-j",
    "-P",
    "infected",
    join(directory, "enc.zip"),
    join(directory, "eicar.com"),
  ]);
  return readFile(join(directory, "enc.zip"));
}

const backendOf = (answer: { metadata: Record<string, unknown> }, name: string) =>
  (answer.metadata.backends as Array<Record<string, unknown>>).find(
    (backend) => backend.name === name,
  );

describe("hidden payloads through serve (ClamAV + YARA)", () => {
  it("answers a password-protected zip of EICAR unknown, bid 0, never benign", async () => {
    const answer = await answerFor(await zipWithPassword(eicarBytes()));
    expect(answer.verdict).toBe("unknown");
    expect(answer.bid).toBe("0");
    // Neither could look inside: YARA (which unpacks, and names the member) nor clamd. (Both
    // unknown: the policy answers unknown itself, without the INCOMPLETE comment it adds when
    // a benign would otherwise pass over an inconclusive backend.)
    expect(backendOf(answer, "yara")).toMatchObject({
      verdict: "unknown",
      inconclusive: true,
      reason: "SKIPPED:ENCRYPTED",
      metadata: {
        unpack: { skipped: [{ path: "(artifact)!/eicar.com", code: "SKIPPED:ENCRYPTED" }] },
      },
    });
    expect(backendOf(answer, "clamav")).toMatchObject({
      verdict: "unknown",
      inconclusive: true,
      reason: "SKIPPED:ENCRYPTED",
    });
  });

  it("answers EICAR nested 22 zips deep unknown (SKIPPED:LIMITS)", async () => {
    const answer = await answerFor(nestedZip("eicar.com", eicarBytes(), 22));
    expect(answer.verdict).toBe("unknown");
    expect(backendOf(answer, "yara")).toMatchObject({ reason: "SKIPPED:LIMITS" });
    expect(backendOf(answer, "clamav")).toMatchObject({ reason: "SKIPPED:LIMITS" });
  });

  it("keeps honest archives benign and EICAR in a plain zip malicious", async () => {
    const text = Buffer.from("quarterly report\n".repeat(50));
    expect(
      (
        await answerFor(
          zipArchive([
            { name: "a.txt", data: text },
            { name: "b.txt", data: text },
          ]),
        )
      ).verdict,
    ).toBe("benign");
    expect((await answerFor(nestedZip("notes.txt", text, 3))).verdict).toBe("benign");
    const detected = await answerFor(zipArchive([{ name: "eicar.com", data: eicarBytes() }]));
    expect(detected.verdict).toBe("malicious");
    expect(BigInt(detected.bid)).toBeGreaterThan(0n);
  });
});
