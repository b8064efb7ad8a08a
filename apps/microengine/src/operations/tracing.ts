import { publicError } from "@engine/core";
import { type Attributes, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { engineVersion } from "./version.js";

/**
 * The engine's tracer, through @opentelemetry/api only: every span is a no-op until the host
 * registers a tracer provider (see the README's Tracing section).
 */
export const tracer = trace.getTracer("microengine", engineVersion);

/**
 * Runs `work` in an active span named `name` (children nest under it), marks a thrown error on
 * it by its public code and reason only (then rethrows), and ends it. A span leaves the
 * process: an error's message may name hosts, addresses and paths, so it stays in the log.
 */
export function inSpan<T>(
  name: string,
  attributes: Attributes,
  work: (span: Span) => Promise<T>,
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (error) {
      const { code, message } = publicError(error);
      span.setAttribute("engine.error_code", code);
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      throw error;
    } finally {
      span.end();
    }
  });
}
