import type { BackendName } from "../config/config.js";
import type { BackendKind } from "./backend-kind.js";
import { clamavBackend } from "./clamav/clamav-backend.js";
import { eicarBackend } from "./eicar-backend.js";
import { yaraBackend } from "./yara-backend.js";

/**
 * The backends the engine knows by name, in the order they are built and listed in the banner
 * (third-party modules follow, in their ENGINE_BACKENDS order). Each is one entry; a new
 * backend is added here (and its name to `backendNames` in config.ts: the compiler asks for
 * both).
 */
export const backendTable = {
  eicar: eicarBackend,
  yara: yaraBackend,
  clamav: clamavBackend,
} as const satisfies Record<BackendName, BackendKind>;
