/** Thrown when an ENGINE_BACKENDS module cannot be loaded or breaks the contract; names the entry. */
export class BackendModuleError extends Error {
  constructor(entry: string, problem: string, options?: ErrorOptions) {
    super(`ENGINE_BACKENDS entry ${JSON.stringify(entry)}: ${problem}`, options);
    this.name = "BackendModuleError";
  }
}

/**
 * What a module threw, for a {@link BackendModuleError}: an Error's message, else its string
 * form. Never throws, whatever the module threw.
 */
export function describeThrown(error: unknown): string {
  try {
    return error instanceof Error ? String(error.message) : String(error);
  } catch {
    return "an error that cannot be printed"; // e.g. Object.create(null), or a throwing getter
  }
}
