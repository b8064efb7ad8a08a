import { createEicarScanner } from "@engine/core";
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { answerOf, bountyBody, engineWith, postBounty, useCollector } from "../harness/engine.js";

// What an operator sees once they register a tracer provider: the engine and @engine/multi
// only call @opentelemetry/api, so this test's in-memory exporter receives their spans.
const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
beforeAll(() => {
  provider.register();
});
afterAll(async () => {
  await provider.shutdown();
});
const collector = useCollector();

describe("tracing", () => {
  it("traces a bounty: its download, the scan with one span per backend, and the delivery", async () => {
    const { app, processor } = await engineWith([createEicarScanner()]);
    try {
      const { id, text } = bountyBody(collector);
      expect((await postBounty(app, text)).statusCode).toBe(202);
      expect((await answerOf(collector, id)).verdict).toBe("malicious");
      // The bounty's span ends once the answer's POST has returned (after the collector saw it).
      await vi.waitFor(
        () => expect(exporter.getFinishedSpans().some((span) => span.name === "bounty")).toBe(true),
        { timeout: 10_000 },
      );
      const spans = exporter.getFinishedSpans();
      const byName = new Map(spans.map((span) => [span.name, span]));
      const bounty = byName.get("bounty");
      expect(bounty?.attributes).toMatchObject({
        "engine.bounty.id": String(id),
        "engine.bounty.phase": "assertion",
        "engine.verdict": "malicious",
        "engine.malware_family": "EICAR-Test-File",
      });
      const parentOf = (name: string) => byName.get(name)?.parentSpanContext?.spanId;
      const spanId = (name: string) => byName.get(name)?.spanContext().spanId;
      expect(parentOf("download")).toBe(spanId("bounty"));
      expect(parentOf("scan")).toBe(spanId("bounty"));
      expect(parentOf("scan eicar")).toBe(spanId("scan"));
      expect(parentOf("deliver")).toBe(spanId("bounty"));
      expect(byName.get("scan eicar")?.attributes).toMatchObject({
        "engine.backend": "eicar",
        "engine.verdict": "malicious",
      });
      expect(byName.get("deliver")?.attributes).toMatchObject({ "engine.delivered": true });
      expect(new Set(spans.map((span) => span.spanContext().traceId)).size).toBe(1);
      // No artifact URI (a data: URI, or a token in a query) in any span.
      expect(JSON.stringify(spans.map((span) => span.attributes))).not.toContain("base64");
    } finally {
      await app.close();
      await processor.drain();
    }
  });
});
