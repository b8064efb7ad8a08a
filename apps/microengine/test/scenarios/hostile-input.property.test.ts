import { defineScanner, type ScanResult, scanResultSchema } from "@engine/core";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { signBody } from "../../src/protocol/webhook-signature.js";
import { type Collector, engineWith, secret, startCollector } from "../harness/engine.js";

// Thousands of arbitrary signed bodies and scan requests against the engine. The unit suite runs
// a fixed seed; ENGINE_PROPERTY_RUNS=20000 (and ENGINE_PROPERTY_SEED) runs the longer form.
const runs = Number(process.env.ENGINE_PROPERTY_RUNS ?? 1500);
const seed = Number(process.env.ENGINE_PROPERTY_SEED ?? 20261122);

let collector: Collector;
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeAll(async () => {
  collector = await startCollector();
  process.on("unhandledRejection", onUnhandled);
});
afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  await collector.close();
});

/** Markers of the artifacts the backend actually scanned. */
const scannedMarkers = new Set<string>();
let scans = 0;
const recorder = defineScanner({
  name: "recorder",
  scan: async (artifact): Promise<ScanResult> => {
    // Counted once the whole artifact was read: the markers sit at the end, so a scan of a
    // prefix would miss them.
    const text = Buffer.from(await artifact.bytes()).toString("latin1");
    scans += 1;
    for (const [, marker] of text.matchAll(/marker-(\d+)/g)) scannedMarkers.add(marker as string);
    return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
  },
});

/** Anything at all, including the keys that break naive code. */
const hostileValue = fc.oneof(
  fc.anything({ maxDepth: 3, withBigInt: false }),
  fc.constantFrom(
    { toString: 1 },
    { valueOf: 1, toString: 1 },
    { ["__proto__"]: { polluted: true } },
    { constructor: { prototype: { polluted: true } } },
    [],
    null,
    "",
    "\u0000\uffff\ud800",
    -1,
    1e308,
    Number.MAX_SAFE_INTEGER + 2,
  ),
  fc.string({ unit: "binary", maxLength: 40 }),
);

type Field =
  | "id"
  | "artifact_type"
  | "artifact_uri"
  | "expiration"
  | "response_url"
  | "phase"
  | "metadata"
  | "rules"
  | "mimetype"
  | "sha256"
  | "duration";
const fields: Field[] = [
  "id",
  "artifact_type",
  "artifact_uri",
  "expiration",
  "response_url",
  "phase",
  "metadata",
  "rules",
  "mimetype",
  "sha256",
  "duration",
];

/** A well-formed bounty with some fields removed or replaced by hostile values. */
const mutatedBounty = fc.record({
  mutations: fc
    .dictionary(
      fc.constantFrom(...fields),
      fc.oneof(
        fc.constant({ remove: true }),
        hostileValue.map((value) => ({ value })),
        fc.constant({ value: `x${"y".repeat(100)}` }),
      ),
      { maxKeys: 3 },
    )
    .chain((mutations) => fc.constantFrom(mutations, {})),
  extraKeys: fc.dictionary(
    fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "prototype")),
    hostileValue,
    { maxKeys: 3 },
  ),
  phase: fc.constantFrom(
    "assertion",
    "ARBITRATION",
    "Assertion",
    "assertion_window",
    "Arbitration_Window",
  ),
  idForm: fc.constantFrom("string", "number", "bigint"),
  metadata: fc.dictionary(
    fc.oneof(
      fc.string({ maxLength: 8 }),
      fc.constantFrom("mimetype", "artifact_type", "__proto__"),
    ),
    hostileValue,
    { maxKeys: 4 },
  ),
  rules: fc.oneof(
    fc.constant(undefined),
    fc.record({
      min_allowed_bid: fc.bigInt({ min: 0n, max: 10n ** 20n }),
      max_allowed_bid: fc.bigInt({ min: 0n, max: 10n ** 20n }),
    }),
    fc.record({ max_allowed_bid: fc.bigInt({ min: 0n, max: 10n ** 4n }) }),
  ),
  expiresInMs: fc.integer({ min: 800, max: 2500 }),
  padding: fc.integer({ min: 0, max: 26_000 }),
});

const body = fc.oneof(
  { weight: 6, arbitrary: mutatedBounty.map((bounty) => ({ kind: "bounty" as const, bounty })) },
  { weight: 1, arbitrary: fc.json().map((text) => ({ kind: "text" as const, text })) },
  {
    weight: 1,
    arbitrary: fc
      .string({ unit: "binary", maxLength: 200 })
      .map((text) => ({ kind: "text" as const, text })),
  },
);

const request = fc.record({
  body,
  event: fc.oneof(
    { weight: 8, arbitrary: fc.constant("bounty") },
    { weight: 1, arbitrary: fc.constantFrom("ping", "PING", "", "assertion") },
  ),
  signature: fc.oneof(
    { weight: 10, arbitrary: fc.constant("good" as const) },
    { weight: 1, arbitrary: fc.constantFrom("none" as const, "wrong" as const) },
  ),
  contentType: fc.constantFrom(
    "application/json",
    "text/plain",
    "multipart/form-data; boundary=x",
    "",
  ),
});

const scanRequest = fc.record({
  contentType: fc.constantFrom(
    "application/octet-stream",
    "application/json",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "text/plain; charset=utf-8",
  ),
  payload: fc.oneof(
    fc.uint8Array({ maxLength: 2048 }),
    fc.string({ maxLength: 300 }).map((text) => Buffer.from(text)),
    fc
      .tuple(fc.string({ maxLength: 30 }), fc.uint8Array({ maxLength: 100 }))
      .map(([name, bytes]) =>
        Buffer.concat([
          Buffer.from(
            `--b\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n\r\n`,
          ),
          bytes,
          Buffer.from("\r\n--b--\r\n"),
        ]),
      ),
    fc.integer({ min: 33_000, max: 40_000 }).map((size) => Buffer.alloc(size, 0x41)),
  ),
  timeout: fc.oneof(fc.constant(undefined), fc.string({ maxLength: 6 }), fc.integer()),
});

describe("arbitrary hostile input (property)", () => {
  it("keeps the process up, answers every accepted bounty exactly once, never benign unscanned", async () => {
    const { app } = await engineWith([recorder], {
      BID_FAVOR: "mimetype=text/plain,region=eu",
      BOUNTY_REJECT: "artifact_type=url",
      BOUNTY_ACCEPT: "",
      WEBHOOK_MAX_BYTES: "32768",
      ARTIFACT_MAX_BYTES: "32768",
      BOUNTY_CONCURRENCY: "8",
      BOUNTY_BACKLOG: "64",
      ANSWER_MARGIN_MS: "300",
    });
    const accepted = new Map<string, number>(); // answer key -> expiration
    const statuses = new Map<number, number>();
    let index = 0;
    let latestExpiration = Date.now();

    await fc.assert(
      fc.asyncProperty(request, async ({ body: generated, event, signature, contentType }) => {
        index += 1;
        const key = `p${index}`;
        let text: string;
        let expiresAt = 0;
        if (generated.kind === "bounty") {
          const { bounty } = generated;
          expiresAt = Date.now() + bounty.expiresInMs;
          const marker = `marker-${index}`;
          const content = Buffer.from(`${"z".repeat(bounty.padding)} ${marker}`);
          const idDigits = String(1_000_000 + index);
          const object: Record<string, unknown> = {
            ...bounty.extraKeys,
            id: bounty.idForm === "string" ? idDigits : "__ID__",
            artifact_type: "file",
            artifact_uri: `data:application/octet-stream;base64,${content.toString("base64")}`,
            expiration: new Date(expiresAt).toISOString(),
            response_url: `${collector.url}/answers/${key}`,
            phase: bounty.phase,
            metadata: bounty.metadata,
            ...(bounty.rules ? { rules: bounty.rules } : {}),
          };
          for (const [field, mutation] of Object.entries(bounty.mutations)) {
            if ("remove" in mutation) delete object[field];
            else object[field] = mutation.value;
          }
          text = JSON.stringify(object, (_key, value) =>
            typeof value === "bigint" ? `__BIG__${value}` : value,
          )
            .replace(/"__BIG__(\d+)"/g, "$1")
            .replace('"__ID__"', idDigits);
        } else {
          text = generated.text;
        }
        const headers: Record<string, string> = { "x-polyswarm-event": event };
        if (contentType) headers["content-type"] = contentType;
        if (signature === "good") headers["x-polyswarm-signature"] = signBody(secret, text);
        if (signature === "wrong") headers["x-polyswarm-signature"] = "0".repeat(64);
        const response = await app.inject({ method: "POST", url: "/", payload: text, headers });
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        expect([200, 202, 400, 401, 413, 503]).toContain(response.statusCode);
        expect(response.body).not.toMatch(/node_modules|\bat \/|TypeError|RangeError/);
        if (response.statusCode === 202 && !response.json().duplicate) {
          // Accepted: its answer goes to this key (unless the mutation moved response_url).
          const answerKey = text.includes(`/answers/${key}"`) ? key : undefined;
          if (answerKey) {
            accepted.set(answerKey, expiresAt);
            latestExpiration = Math.max(latestExpiration, expiresAt);
          }
        }
      }),
      { numRuns: runs, seed },
    );

    await fc.assert(
      fc.asyncProperty(scanRequest, async ({ contentType, payload, timeout }) => {
        const before = scans;
        const response = await app.inject({
          method: "POST",
          url: `/scan${timeout === undefined ? "" : `?timeout_ms=${encodeURIComponent(String(timeout))}`}`,
          payload: Buffer.from(payload),
          headers: { "content-type": contentType },
        });
        // 503 only for the bound and 504 only for the client's own timeout_ms (the scanner never
        // fails here): never a 5xx for a body.
        expect([200, 400, 413, 503, 504]).toContain(response.statusCode);
        if (response.statusCode === 503) expect(response.json().error.code).toBe("OVERLOADED");
        if (response.statusCode === 504) expect(response.json().error.code).toBe("SCAN_TIMEOUT");
        if (response.statusCode === 200) {
          const result = scanResultSchema.parse(response.json());
          if (result.verdict === "benign") expect(scans).toBeGreaterThan(before);
        }
      }),
      { numRuns: Math.max(100, Math.round(runs / 5)), seed },
    );

    // Every accepted bounty: exactly one answer, by its expiration; benign only when scanned.
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, latestExpiration - Date.now()) + 300),
    );
    const problems: string[] = [];
    for (const [key, expiresAt] of accepted) {
      const answers = collector.answersFor(key);
      if (answers.length !== 1) problems.push(`${key}: ${answers.length} answers`);
      const answer = answers[0];
      if (!answer) continue;
      if (answer.at > expiresAt) problems.push(`${key}: answered ${answer.at - expiresAt} ms late`);
      const verdict = JSON.parse(answer.body).verdict;
      if (verdict === "benign" && !scannedMarkers.has(key.slice(1)))
        problems.push(`${key}: benign without a scan`);
    }
    expect(problems).toEqual([]);
    expect(unhandled).toEqual([]);
    expect(accepted.size).toBeGreaterThan(runs / 10); // the property really reached the scans
    expect((await app.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
    console.log(
      `property: ${runs} bodies (${[...statuses].map(([status, count]) => `${status}x${count}`).join(", ")}), ${accepted.size} accepted and answered once, ${scans} scans`,
    );
    await app.close();
  }, 120_000);
});
