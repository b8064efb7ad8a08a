import { createMultiScanner, type MultiScanner, type VerdictPolicy } from "@engine/multi";
import type { Logger } from "pino";
import { redactUrls } from "../operations/redact.js";
import type { EngineBackend } from "./backend-kind.js";

/**
 * The multi-engine over the running backends' scanners, in their order, combining their
 * answers with `policy` (VERDICT_POLICY). Answers carry each failure's code and public reason;
 * the details go to the log.
 */
export function createEngineMultiScanner(
  running: readonly EngineBackend[],
  policy: VerdictPolicy,
  logger: Logger,
): MultiScanner {
  return createMultiScanner(
    running.map((backend) => backend.scanner),
    {
      name: "microengine",
      policy,
      onBackendError: (backend, error) =>
        logger.warn(
          { backend, code: error.code, error: redactUrls(error.message) },
          "a backend could not scan an artifact",
        ),
    },
  );
}
