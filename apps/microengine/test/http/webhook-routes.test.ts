import { gzipSync } from "node:zlib";
import {
  BackendUnavailableError,
  createEicarScanner,
  defineScanner,
  eicarBytes,
  type Scanner,
} from "@engine/core";
import { describe, expect, it, vi } from "vitest";
import { withUnpacking } from "../../src/backends/unpacking-backend.js";
import { tarArchive } from "../../src/commands/check-archives.js";
import { loadConfig } from "../../src/config/config.js";
import { answerBodyProblem } from "../../src/protocol/answer-body.js";
import { answerTarget } from "../harness/answer-target.js";
import { bountyBody, engineWith, postBounty, signed, useCollector } from "../harness/engine.js";

const collector = useCollector();
const bounty = (overrides: Record<string, unknown> = {}, expiresInMs = 4000) =>
  bountyBody(collector, overrides, expiresInMs);
const answersFor = (id: number) => collector.answersFor(id);

describe("the webhook", () => {
  it("answers ping, and refuses unsigned, wrongly signed and unknown requests with the protocol's codes", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    const body = '{"ping":true}';
    expect(
      (
        await app.inject({ method: "POST", url: "/", payload: body, headers: signed(body, "ping") })
      ).json(),
    ).toEqual({ status: "OK" });
    expect(
      (
        await app.inject({
          method: "POST",
          url: "/",
          payload: body,
          headers: { "content-type": "application/json", "x-polyswarm-event": "ping" },
        })
      ).statusCode,
    ).toBe(400);
    expect(
      (
        await app.inject({
          method: "POST",
          url: "/",
          payload: body,
          headers: { ...signed(body, "ping"), "x-polyswarm-signature": "0".repeat(64) },
        })
      ).statusCode,
    ).toBe(401);
    expect(
      (
        await app.inject({
          method: "POST",
          url: "/",
          payload: '{"ping":false}',
          headers: signed(body, "ping"),
        })
      ).statusCode,
    ).toBe(401);
    const unknown = await app.inject({
      method: "POST",
      url: "/",
      payload: body,
      headers: signed(body, "assertion"),
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error).toMatch(/unknown X-POLYSWARM-EVENT/);
    await app.close();
  });

  it("refuses a signed bounty whose metadata is nested 3,000 deep with 400, once, and answers nothing (second audit, item 15: it was a 503 retry loop in queue mode)", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    const deep = bounty();
    const body = deep.text.replace(/}$/, `,"metadata":${"[".repeat(3000)}${"]".repeat(3000)}}`);
    const refused = await postBounty(app, body);
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error).toMatch(/nested more than 32 levels/);
    // Sent again (a marketplace retrying): the same 400, never "retry later".
    expect((await postBounty(app, body)).statusCode).toBe(400);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(answersFor(deep.id)).toHaveLength(0);
    await app.close();
  });

  it("refuses bad JSON, wrong types (naming the field) and oversize bodies", async () => {
    // With 4 KB artifacts, a webhook body is capped at 1 MiB.
    const { app } = await engineWith([createEicarScanner()], { ARTIFACT_MAX_BYTES: "4096" });
    const bad = "{not json";
    expect((await postBounty(app, bad)).statusCode).toBe(400);
    const wrong = JSON.stringify({
      id: 1,
      artifact_type: "file",
      artifact_uri: "data:,x",
      response_url: 42,
    });
    const refused = await postBounty(app, wrong);
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error).toMatch(/^response_url/);
    const huge = JSON.stringify({ padding: "x".repeat(2 * 1024 * 1024) });
    expect((await postBounty(app, huge)).statusCode).toBe(413);
    await app.close();
  });

  it("accepts a bounty at once and posts an assertion with an integer bid in range", async () => {
    // The harness's scanner states no coverage: bids as a real-coverage engine's (a malicious
    // EICAR keeps this bid on a test-signature engine too; see test/intake/answer-poster.test.ts).
    const { app } = await engineWith([createEicarScanner()]);
    const { id, text } = bounty();
    const response = await postBounty(app, text);
    expect(response.statusCode).toBe(202);
    expect(response.json()).toEqual({ status: "ACCEPTED" });
    await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 4000 });
    const answer = answersFor(id)[0]?.body ?? "";
    expect(answer).toMatch(/"bid":5000[,}]/);
    expect(JSON.parse(answer)).toMatchObject({
      verdict: "malicious",
      metadata: { malware_family: "EICAR-Test-File", scanner: { version: "0.1.0" } },
    });
    await app.close();
  });

  it("answers with each backend's metadata.unpack: where it found something inside an archive (and the metrics count it)", async () => {
    const eicar = createEicarScanner();
    const { scanner } = withUnpacking(
      {
        name: eicar.name,
        scanner: eicar,
        status: { name: eicar.name, running: true, reason: "test" },
        health: async () => ({ ok: true }),
      },
      loadConfig({}),
    );
    const { app, metrics } = await engineWith([scanner]);
    const archive = gzipSync(tarArchive([{ name: "eicar.com", data: eicarBytes() }]));
    const { id, text } = bounty({
      artifact_uri: `data:application/gzip;base64,${archive.toString("base64")}`,
    });
    expect((await postBounty(app, text)).statusCode).toBe(202);
    await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 4000 });
    const answer = JSON.parse(answersFor(id)[0]?.body ?? "{}");
    expect(answer.verdict).toBe("malicious");
    const unpack = answer.metadata.backends[0].metadata.unpack;
    expect(unpack).toMatchObject({
      members: 1,
      detected_in: "(artifact)!/content",
      detections: [{ path: "(artifact)!/content", verdict: "malicious" }],
    });
    // What an answer record read back must be (queue mode) still holds.
    expect(answerBodyProblem(answersFor(id)[0]?.body ?? "", answerTarget())).toBeUndefined();
    expect(await metrics.registry.metrics()).toMatch(
      /engine_unpack_members_total\{backend="eicar"\} 1/,
    );
    await app.close();
  });

  it("acknowledges a replayed delivery without a second scan or answer", async () => {
    const scan = vi.fn(async () => ({
      verdict: "benign" as const,
      confidence: 1,
      metadata: { malware_family: "" },
    }));
    const { app } = await engineWith([defineScanner({ name: "counted", scan })]);
    const { id, text } = bounty();
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const response = await app.inject({
        method: "POST",
        url: "/",
        payload: text,
        headers: signed(text, "bounty", "delivery-1"),
      });
      expect(response.statusCode).toBe(202);
    }
    await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 4000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(answersFor(id)).toHaveLength(1);
    expect(scan).toHaveBeenCalledTimes(1);
    await app.close();
  });

  it("answers unknown, before expiration, when the backend is down or hangs", async () => {
    const down = defineScanner({
      name: "down",
      scan: async () => {
        throw new BackendUnavailableError({ message: "clamd is not running" });
      },
    });
    const stuck: Scanner = {
      name: "stuck",
      scan: () => new Promise(() => {}),
      [Symbol.asyncDispose]: async () => {},
    };
    for (const scanner of [down, stuck]) {
      const { app, metrics } = await engineWith([scanner]);
      const { id, text } = bounty({}, 2500);
      const expiresAt = Date.now() + 2500;
      await postBounty(app, text);
      await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 3000 });
      const answer = answersFor(id)[0];
      expect(answer?.at).toBeLessThanOrEqual(expiresAt);
      const parsed = JSON.parse(answer?.body ?? "{}");
      expect(parsed).toMatchObject({ verdict: "unknown", bid: 0 });
      expect(parsed.metadata.comments.join(" ")).toMatch(/ERROR:/);
      expect(await metrics.dropped.get()).toMatchObject({ values: [{ value: 0 }] });
      await app.close();
    }
  });

  it("answers unknown with the reason when the artifact cannot be fetched", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    const cases = [
      { artifact_uri: "https://files.example.com/a.bin" },
      { artifact_uri: "http://127.0.0.1:1/a.bin" },
      { artifact_uri: "file:///etc/passwd" },
      { sha256: "0".repeat(64) },
    ];
    const ids: number[] = [];
    for (const overrides of cases) {
      const { id, text } = bounty(overrides);
      ids.push(id);
      await postBounty(app, text);
    }
    await vi.waitFor(() => expect(ids.every((id) => answersFor(id).length === 1)).toBe(true), {
      timeout: 4000,
    });
    const comments = ids.map((id) =>
      JSON.parse(answersFor(id)[0]?.body ?? "{}").metadata.comments.join(" "),
    );
    expect(comments[0]).toMatch(/not in ARTIFACT_ALLOWED_HOSTS/);
    expect(comments[1]).toMatch(/not in ARTIFACT_ALLOWED_HOSTS/);
    expect(comments[2]).toMatch(/file: URIs are off/);
    expect(comments[3]).toMatch(/sha256 mismatch/);
    await app.close();
  });

  it("sends a vote without a bid in the arbitration phase", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    const { id, text } = bounty({ phase: "ARBITRATION" });
    await postBounty(app, text);
    await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 4000 });
    const vote = JSON.parse(answersFor(id)[0]?.body ?? "{}");
    expect(vote.verdict).toBe("malicious");
    expect("bid" in vote).toBe(false);
    await app.close();
  });
});

describe("bounty handling", () => {
  it("answers what is in flight with unknown when the engine shuts down", async () => {
    const stuck: Scanner = {
      name: "stuck",
      scan: () => new Promise(() => {}),
      [Symbol.asyncDispose]: async () => {},
    };
    const { app, processor } = await engineWith([stuck]);
    const { id, text } = bounty({}, 20_000);
    await postBounty(app, text);
    await vi.waitFor(() => expect(processor.inFlight).toBe(1));
    const started = Date.now();
    await processor.drain();
    expect(Date.now() - started).toBeLessThan(2000);
    const answer = JSON.parse(answersFor(id)[0]?.body ?? "{}");
    expect(answer).toMatchObject({ verdict: "unknown", bid: 0 });
    expect(answer.metadata.comments.join(" ")).toMatch(/shut down/);
    await app.close();
  });

  it("answers filtered bounties unknown without scanning them", async () => {
    const scan = vi.fn(async () => ({
      verdict: "malicious" as const,
      confidence: 1,
      metadata: { malware_family: "X" },
    }));
    const { app } = await engineWith([defineScanner({ name: "counted", scan })], {
      BOUNTY_REJECT: "mimetype=application/x-dosexec",
    });
    const { id, text } = bounty({ mimetype: "application/x-dosexec" });
    await postBounty(app, text);
    await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 4000 });
    const answer = JSON.parse(answersFor(id)[0]?.body ?? "{}");
    expect(answer).toMatchObject({ verdict: "unknown", bid: 0 });
    expect(answer.metadata.comments[0]).toMatch(
      /SKIPPED:FILTERED by BOUNTY_REJECT mimetype=application\/x-dosexec/,
    );
    expect(scan).not.toHaveBeenCalled();
    await app.close();
  });

  it("scans a URL bounty as a URL artifact whose content is the URL", async () => {
    const seen: Array<{ kind: string; text: string }> = [];
    const scanner = defineScanner({
      name: "url-aware",
      scan: async (artifact) => {
        seen.push({ kind: artifact.kind, text: Buffer.from(await artifact.bytes()).toString() });
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const { app } = await engineWith([scanner]);
    const url = "https://phishing.example/login";
    const { id, text } = bounty({
      artifact_type: "URL",
      artifact_uri: `data:text/plain,${encodeURIComponent(url)}`,
    });
    await postBounty(app, text);
    await vi.waitFor(() => expect(answersFor(id)).toHaveLength(1), { timeout: 4000 });
    expect(seen).toEqual([{ kind: "url", text: url }]);
    await app.close();
  });
});
