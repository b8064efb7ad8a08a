import { createHash } from "node:crypto";
import { createServer as createHttpServer, type Server } from "node:http";
import { eicarBytes } from "@engine/core";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEngine, startEngine } from "../../src/commands/serve-engine.js";
import { loadConfig } from "../../src/config/config.js";
import { defaultBidRange } from "../../src/protocol/bid.js";
import { signBody } from "../../src/protocol/webhook-signature.js";
import { type Collector, startCollector } from "../harness/engine.js";

// Bounties shaped as PolySwarm's webhook SDK (microengine-webhooks-py) builds them in its own
// tests, written anew here: its server test (`"phase": "assertion_window"`, `"artifact_type":
// "FILE"`, `"rules": {}`, a `+00:00` expiration with microseconds, `"duration"`, an extra
// field) and its integration fixtures (a UUID id, lower-case `file`, JSON integer bid rules),
// posted signed to a real `serve` (YARA + a managed clamd) that downloads the artifacts over HTTP.

const secret = "sdk-fixtures";
const benignBytes = Buffer.from("an ordinary text file, nothing to see here\n");
const sha256 = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

let engine: RunningEngine;
let collector: Collector;
let artifacts: Server;
let artifactBase: string;

beforeAll(async () => {
  artifacts = createHttpServer((request, response) => {
    const body = request.url === "/eicar" ? eicarBytes() : benignBytes;
    response.writeHead(200, { "content-type": "text/plain" }).end(body);
  });
  await new Promise<void>((resolve) => artifacts.listen(0, "127.0.0.1", resolve));
  artifactBase = `http://127.0.0.1:${(artifacts.address() as { port: number }).port}`;
  collector = await startCollector();
  engine = await startEngine(
    loadConfig({
      WEBHOOK_SECRET: secret,
      PORT: "0",
      ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
      ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
    }),
    pino({ level: "silent" }),
  );
}, 120_000);

afterAll(async () => {
  await engine?.close();
  await collector?.close();
  artifacts?.closeAllConnections();
  await new Promise((resolve) => artifacts?.close(resolve));
});

/** Python's `datetime.now(timezone.utc).isoformat()`, `seconds` ahead: microseconds and `+00:00`. */
function pythonIsoformat(seconds: number): string {
  return new Date(Date.now() + seconds * 1000)
    .toISOString()
    .replace(/\.(\d{3})Z$/, (_match, millis: string) => `.${millis}417+00:00`);
}

/** Python's `json.dumps` separators (`", "` and `": "`), as the SDK's clients send bodies. */
function pythonJson(value: Record<string, unknown>): string {
  return `{${Object.entries(value)
    .map(([key, item]) => `${JSON.stringify(key)}: ${pythonJson.value(item)}`)
    .join(", ")}}`;
}
pythonJson.value = (item: unknown): string =>
  typeof item === "bigint"
    ? item.toString()
    : item !== null && typeof item === "object"
      ? pythonJson(item as Record<string, unknown>)
      : JSON.stringify(item);

async function post(body: string, event = "bounty") {
  return fetch(`${engine.url}/`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-polyswarm-event": event,
      "x-polyswarm-signature": signBody(secret, Buffer.from(body)),
    },
    body,
  });
}

async function answerFor(key: string, timeoutMs = 20_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [answer, second] = collector.answersFor(key);
    if (answer) {
      expect(second).toBeUndefined();
      return JSON.parse(answer.body) as Record<string, unknown>;
    }
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no answer for ${key} within ${timeoutMs} ms`);
}

/** The server test's bounty: `Bounty(...)` of microengine-webhooks-py, as `dataclasses.asdict` sends it. */
function serverTestBounty(id: number, phase: string, file: "eicar" | "benign") {
  return pythonJson({
    id,
    artifact_type: "FILE",
    artifact_uri: `${artifactBase}/${file}`,
    expiration: pythonIsoformat(30),
    response_url: `${collector.url}/answers/${id}`,
    rules: {},
    sha256: sha256(file === "eicar" ? eicarBytes() : benignBytes),
    mimetype: "text/plain",
    phase,
    metadata: null,
    duration: 30,
    tasked_at: null,
    extra_spam: "extra eggs",
  });
}

describe("the webhook SDK's server-test bounty", () => {
  it("accepts phase assertion_window and answers an assertion with a bid", async () => {
    const response = await post(serverTestBounty(987654321, "assertion_window", "eicar"));
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ status: "ACCEPTED" });
    const answer = await answerFor("987654321");
    expect(answer.verdict).toBe("malicious");
    // `rules: {}` bids within the marketplace's default range.
    const bid = BigInt(String(answer.bid));
    expect(bid).toBeGreaterThanOrEqual(defaultBidRange.min);
    expect(bid).toBeLessThanOrEqual(defaultBidRange.max);
    expect((answer.metadata as { malware_family?: string }).malware_family).toMatch(/eicar/i);
  });

  it("accepts phase arbitration_window and answers a vote without a bid", async () => {
    const response = await post(serverTestBounty(987654322, "arbitration_window", "benign"));
    expect(response.status).toBe(202);
    const answer = await answerFor("987654322");
    expect(answer.verdict).toBe("benign");
    expect(answer).not.toHaveProperty("bid");
  });

  it("reads phases in any case, and a null phase as an assertion", async () => {
    const upper = await post(serverTestBounty(987654323, "ARBITRATION_Window", "eicar"));
    expect(upper.status).toBe(202);
    expect(await answerFor("987654323")).not.toHaveProperty("bid");
    const missing = await post(
      serverTestBounty(987654324, "assertion", "benign").replace(
        '"phase": "assertion"',
        '"phase": null',
      ),
    );
    expect(missing.status).toBe(202);
    const answer = await answerFor("987654324");
    expect(answer.verdict).toBe("benign");
    expect(answer).toHaveProperty("bid");
  });

  it("refuses any other phase with 400 naming phase and the accepted ones", async () => {
    for (const phase of ["reveal", "assertion window", "", "__proto__", "constructor"]) {
      const response = await post(serverTestBounty(987654325, phase, "benign"));
      expect(response.status, phase).toBe(400);
      const body = (await response.json()) as { code: string; error: string };
      expect(body.code).toBe("BAD_BOUNTY");
      expect(body.error).toBe(
        "phase: not a phase; accepted (any case): assertion, assertion_window, arbitration, arbitration_window",
      );
    }
    expect(collector.answersFor("987654325")).toEqual([]);
  });
});

describe("the webhook SDK's integration fixtures", () => {
  const uuid = "a7f8818a-95fc-4487-ad9a-522f6cd88cb2";
  const fixture = (overrides: Record<string, unknown>) =>
    pythonJson({
      id: uuid,
      artifact_type: "file",
      artifact_uri: `${artifactBase}/eicar`,
      sha256: sha256(eicarBytes()),
      mimetype: "text/plain",
      expiration: pythonIsoformat(30),
      phase: "assertion",
      response_url: `${collector.url}/answers/${uuid}`,
      rules: {
        min_allowed_bid: 62_500_000_000_000_000n,
        max_allowed_bid: 1_000_000_000_000_000_000n,
      },
      ...overrides,
    });

  it("answers a bounty with a UUID id, its bid within the rules", async () => {
    const response = await post(fixture({}));
    expect(response.status).toBe(202);
    const answer = await answerFor(uuid);
    expect(answer.verdict).toBe("malicious");
    expect(BigInt(String(answer.bid))).toBeGreaterThanOrEqual(62_500_000_000_000_000n);
  });

  it("refuses, naming the field, what the fixture files hold that an engine must not trust", async () => {
    // The files themselves say sha256 "asdf" and a naive expiration a century ahead; the SDK's
    // own webhook refuses the naive time too (it subtracts it from an aware `now`).
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ sha256: "asdf" }, "sha256"],
      [{ expiration: "2121-06-24T10:03:28.006071" }, "expiration"],
      [{ expiration: "2121-06-24T10:03:28.006071+00:00" }, "expiration: more than 24 hours ahead"],
      [{ id: "a7f8818a-95fc-4487-ad9a-522f6cd88cb2:assertion" }, "id"],
    ];
    for (const [overrides, field] of cases) {
      const response = await post(
        fixture({ ...overrides, response_url: `${collector.url}/answers/refused` }),
      );
      expect(response.status, field).toBe(400);
      expect(((await response.json()) as { error: string }).error.startsWith(field)).toBe(true);
    }
    expect(collector.answersFor("refused")).toEqual([]);
  });
});

describe("the webhook SDK's liveness and ping", () => {
  it("answers GET / with 200 {status: OK}, no signature needed", async () => {
    const response = await fetch(`${engine.url}/`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "OK" });
  });

  it("answers a signed ping (empty body) with 200 {status: OK}", async () => {
    const response = await post("", "ping");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "OK" });
  });
});
