import type { ScanResult } from "@engine/core";
import pino from "pino";
import { Counter, Registry } from "prom-client";
import { describe, expect, it, vi } from "vitest";
import { withCoverage } from "../../src/backends/signature-coverage.js";
import { AnswerPoster } from "../../src/intake/answer-poster.js";
import type { ResponseDelivery } from "../../src/net/response-delivery.js";
import type { AnswerKey, AnswerLedger } from "../../src/queue/answer-ledger.js";
import { answerTarget } from "../harness/answer-target.js";

/** The counters the poster keeps, in a registry of their own. */
function counters() {
  const registers = [new Registry()];
  return {
    bounties: new Counter({
      name: "bounties",
      help: "bounties",
      labelNames: ["phase", "outcome"] as const,
      registers,
    }),
    answeredLate: new Counter({ name: "late", help: "late", registers }),
    dropped: new Counter({ name: "dropped", help: "dropped", registers }),
    redisRejected: new Counter({
      name: "rejected",
      help: "rejected",
      labelNames: ["kind"] as const,
      registers,
    }),
  };
}

async function counted(counter: Counter<string>, labels: Record<string, string> = {}) {
  const { values } = await counter.get();
  const match = values.find((value) =>
    Object.entries(labels).every(([name, label]) => value.labels[name] === label),
  );
  return match?.value ?? 0;
}

/** A logger whose lines are kept, parsed. */
function capturingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: "debug" },
    { write: (line: string) => lines.push(JSON.parse(line)) },
  );
  return { logger, messages: () => lines.map((line) => line.msg) };
}

/** An answer ledger in memory; `claim` answers what `claimed` says. */
function memoryLedger(claimed: (body: string) => Promise<string | undefined>) {
  const posted: Array<{ key: AnswerKey; body: string }> = [];
  const ledger: AnswerLedger = {
    claim: (_key, body) => claimed(body),
    posted: async (key, body) => {
      posted.push({ key, body });
    },
    isPosted: async () => false,
  };
  return { ledger, posted };
}

const malicious: ScanResult = {
  verdict: "malicious",
  confidence: 1,
  metadata: { malware_family: "EICAR", comments: [] },
};

const target = answerTarget;

function setUp(options: { ledger?: AnswerLedger; delivered?: () => Promise<boolean> } = {}) {
  const metrics = counters();
  const deliver = vi.fn<ResponseDelivery["deliver"]>(options.delivered ?? (async () => true));
  const stop = new AbortController().signal;
  const poster = new AnswerPoster({
    config: { BID_STRATEGY: "linear" },
    metrics,
    ledger: options.ledger,
    delivery: { deliver },
    stop,
  });
  return { poster, metrics, deliver, stop, ...capturingLogger() };
}

describe("the answer poster", () => {
  // `malicious` states no coverage: it bids as a real-coverage engine's answer (see below).
  it("posts the assertion with its bid and Idempotency-Key, records it posted and counts it", async () => {
    const { ledger, posted } = memoryLedger(async (body) => body);
    const { poster, metrics, deliver, stop, logger, messages } = setUp({ ledger });
    await poster.post(target(), malicious, logger);
    expect(deliver).toHaveBeenCalledOnce();
    const [delivery] = deliver.mock.calls[0] ?? [];
    expect(delivery).toMatchObject({
      url: "https://m.example/answers/7",
      idempotencyKey: "7:assertion",
      stop,
    });
    expect(JSON.parse(delivery?.body ?? "")).toEqual({
      verdict: "malicious",
      bid: 5_000,
      metadata: malicious.metadata,
    });
    await vi.waitFor(() => expect(posted).toHaveLength(1));
    expect(posted[0]?.body).toBe(delivery?.body);
    expect(await counted(metrics.bounties, { phase: "assertion", outcome: "malicious" })).toBe(1);
    expect(messages()).toContain("answered");
  });

  it("posts an arbitration vote without a bid", async () => {
    const { poster, deliver, logger } = setUp();
    await poster.post(target({ phase: "arbitration" }), malicious, logger);
    expect(JSON.parse(deliver.mock.calls[0]?.[0].body ?? "")).toEqual({
      verdict: "malicious",
      metadata: malicious.metadata,
    });
    expect(deliver.mock.calls[0]?.[0].idempotencyKey).toBe("7:arbitration");
  });

  it("posts nothing, and counts nothing, when another process answered already", async () => {
    const { ledger } = memoryLedger(async () => undefined);
    const { poster, metrics, deliver, logger, messages } = setUp({ ledger });
    await poster.post(target(), malicious, logger);
    expect(deliver).not.toHaveBeenCalled();
    expect(messages()).toContain("answered already by another process");
    expect(await counted(metrics.bounties)).toBe(0);
    expect(await counted(metrics.dropped)).toBe(0);
  });

  it("posts the body another process recorded when it keeps to the rules, its own otherwise", async () => {
    const recorded = '{"verdict":"benign","bid":1000,"metadata":{}}';
    const kept = setUp({ ledger: memoryLedger(async () => recorded).ledger });
    await kept.poster.post(target(), malicious, kept.logger);
    expect(kept.deliver.mock.calls[0]?.[0].body).toBe(recorded);
    // Counted and logged as what was posted, not as this process's own result.
    expect(await counted(kept.metrics.bounties, { phase: "assertion", outcome: "benign" })).toBe(1);
    expect(await counted(kept.metrics.bounties, { phase: "assertion", outcome: "malicious" })).toBe(
      0,
    );
    expect(kept.messages()).toContain(
      "answered with the answer another process recorded (and could not post)",
    );

    const forged = '{"verdict":"benign","bid":999999,"metadata":{}}';
    const broken = setUp({ ledger: memoryLedger(async () => forged).ledger });
    await broken.poster.post(target(), malicious, broken.logger);
    expect(JSON.parse(broken.deliver.mock.calls[0]?.[0].body ?? "")).toMatchObject({
      verdict: "malicious",
    });
    expect(await counted(broken.metrics.redisRejected, { kind: "answer" })).toBe(1);
    expect(broken.messages()).toContain(
      "the recorded answer breaks the bounty's rules: posting this one",
    );
  });

  it("posts anyway when the ledger does not answer within 2 s, or fails", async () => {
    const { ledger, posted } = memoryLedger(() => new Promise(() => {}));
    const slow = setUp({ ledger });
    const started = Date.now();
    await slow.poster.post(target(), malicious, slow.logger);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_990);
    expect(slow.deliver).toHaveBeenCalledOnce();
    expect(slow.messages()).toContain("the answer ledger did not answer in time: posting anyway");
    // Recorded even so: nobody posts again after it.
    await vi.waitFor(() => expect(posted).toHaveLength(1));

    const failing = setUp({
      ledger: memoryLedger(() => Promise.reject(new Error("Redis away"))).ledger,
    });
    await failing.poster.post(target(), malicious, failing.logger);
    expect(failing.deliver).toHaveBeenCalledOnce();
  });

  it("skips the ledger's claim when told to, but records the POST in it", async () => {
    const claim = vi.fn(async (body: string) => body);
    const { ledger, posted } = memoryLedger(claim);
    const { poster, deliver, logger } = setUp({ ledger });
    await poster.post(target(), malicious, logger, "skip");
    expect(claim).not.toHaveBeenCalled();
    expect(deliver).toHaveBeenCalledOnce();
    await vi.waitFor(() => expect(posted).toHaveLength(1));
  });

  it("counts an answer not delivered as dropped, and one delivered after expiration as late", async () => {
    const refused = setUp({ delivered: async () => false });
    await refused.poster.post(target(), malicious, refused.logger);
    expect(await counted(refused.metrics.dropped)).toBe(1);
    expect(refused.messages()).toContain("could not deliver the answer before expiration");

    const failed = setUp({ delivered: () => Promise.reject(new Error("a bug")) });
    await failed.poster.post(target(), malicious, failed.logger);
    expect(await counted(failed.metrics.dropped)).toBe(1);
    expect(failed.messages()).toContain("could not build or send the answer");

    const late = setUp();
    await late.poster.post(target({ expiresAt: Date.now() - 1 }), malicious, late.logger);
    expect(await counted(late.metrics.answeredLate)).toBe(1);
    expect(await counted(late.metrics.bounties)).toBe(0);
    expect(late.messages()).toContain("answered after expiration");
  });
});

describe("the answer's bid by the engine's coverage (rules 1,000 to 5,000)", () => {
  const benign: ScanResult = { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };

  async function posted(result: ScanResult) {
    const { poster, deliver, logger } = setUp();
    await poster.post(target(), result, logger);
    return JSON.parse(deliver.mock.calls[0]?.[0].body ?? "") as Record<string, unknown>;
  }

  it("test-signature engine: benign bids the minimum and says so; malicious (EICAR) keeps its bid", async () => {
    expect(await posted(withCoverage(benign, "test-signatures"))).toEqual({
      verdict: "benign",
      bid: 1_000,
      metadata: { malware_family: "", coverage: "test-signatures" },
    });
    // Even a result whose confidence was not lowered (a recorded one): the metadata decides.
    expect(
      await posted({ ...benign, metadata: { malware_family: "", coverage: "test-signatures" } }),
    ).toMatchObject({ bid: 1_000 });
    expect(await posted(withCoverage(malicious, "test-signatures"))).toMatchObject({
      verdict: "malicious",
      bid: 5_000,
      metadata: { coverage: "test-signatures" },
    });
  });

  it("real-coverage engine: benign at confidence 1 bids the maximum", async () => {
    expect(await posted(withCoverage(benign, "signatures"))).toEqual({
      verdict: "benign",
      bid: 5_000,
      metadata: { malware_family: "", coverage: "signatures" },
    });
  });
});
