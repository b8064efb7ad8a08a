import { type Attributes, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { engineVersion } from "./version.js";

/**
 * The engine's tracer, through @opentelemetry/api only: every span is a no-op until the host
 * registers a tracer provider (see the README's Tracing section).
 */
export const tracer = trace.getTracer("microengine", engineVersion);

/**
 * Runs `work` in an active span named `name` (children nest under it), records a thrown
 * error on it (then rethrows), and ends it.
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
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}
