/**
 * What the engine's signatures can see, as every answer's `metadata.coverage` says:
 * `signatures` when at least one running backend has real signatures (an official ClamAV
 * database, YARA rules of your own, a third-party module); `test-signatures` when every backend
 * has test signatures only (ClamAV's shipped test database, YARA's bundled EICAR rule, the
 * `eicar` backend), which detect EICAR and test samples and nothing else.
 */
export type SignatureCoverage = "signatures" | "test-signatures";

/** What `check` and `/readyz` say of a test-signature engine. */
export const testSignaturesNote = "test signatures only: benign answers bid the minimum";

/** The coverage an answer's metadata states, or undefined when it states none. */
export function answerCoverage(metadata: Record<string, unknown>): SignatureCoverage | undefined {
  const { coverage } = metadata;
  return coverage === "signatures" || coverage === "test-signatures" ? coverage : undefined;
}
