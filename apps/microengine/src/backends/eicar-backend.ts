import { createEicarScanner } from "@engine/core";
import type { BackendKind } from "./backend-kind.js";

/** The EICAR test-string scanner: only when ENGINE_BACKENDS names it (tests, demos). */
export const eicarBackend: BackendKind = {
  async build(wanted) {
    if (!wanted) return {};
    const scanner = createEicarScanner();
    return {
      backend: {
        name: scanner.name,
        scanner,
        status: { name: scanner.name, running: true, reason: "EICAR string detection" },
        health: async () => ({ ok: true, coverage: "test-signatures" }),
        // It detects the EICAR string and nothing else.
        coverage: () => "test-signatures",
      },
    };
  },
};
