import { arch, machine, type } from "node:os";

/** The `scanner.environment` block of verdict metadata. */
export interface ScannerEnvironment {
  /** Operating system kernel name as `uname -s` prints it, e.g. `"Linux"`, `"Darwin"`. */
  operating_system: string;
  /** Machine architecture as `uname -m` prints it, e.g. `"x86_64"`, `"aarch64"`. */
  architecture: string;
}

let cachedEnvironment: ScannerEnvironment | undefined;

/**
 * The environment this process runs in, in the PolySwarm metadata spelling
 * (`{ operating_system: "Linux", architecture: "x86_64" }`). Computed once per process.
 */
export function scannerEnvironment(): ScannerEnvironment {
  cachedEnvironment ??= {
    operating_system: type(),
    architecture: typeof machine === "function" ? machine() : arch(),
  };
  return { ...cachedEnvironment };
}
