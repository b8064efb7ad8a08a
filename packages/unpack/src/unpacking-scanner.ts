import {
  type Artifact,
  artifactFromBytes,
  artifactFromFile,
  defineScanner,
  EngineError,
  errorVerdictComments,
  parseOptions,
  publicError,
  type ScanContext,
  type Scanner,
  type ScanResult,
} from "@engine/core";
import type { SkipCode } from "./extractors/extractor.js";
import { ByteBudget, copyFacts, MemberStore } from "./member-store.js";
import { followWalk } from "./shared-walk.js";
import type { UnpackEvent, UnpackedMember } from "./unpack.js";
import {
  type ResolvedUnpackOptions,
  type UnpackOptions,
  unpackOptionsSchema,
} from "./unpack-options.js";
import { unpackPackageVersion } from "./version.js";

/** Findings listed in a result's metadata at most (the counts say how many in all). */
const listedFindings = 20;

/** What an unpacking scan found besides the outer verdict, as `metadata.unpack`. */
export interface UnpackReport {
  /** The `@engine/unpack` version. */
  version: string;
  /** Members scanned. */
  members: number;
  /** Decoded bytes of the members scanned. */
  bytes: number;
  /** The member that decided a malicious or suspicious verdict (`outer.zip!/a.exe`). */
  detected_in?: string;
  /** Members with a detection (the first 20). */
  detections: Array<{ path: string; verdict: string; malware_family: string }>;
  /**
   * Everything not looked into (the first 20), with its `SKIPPED:*` code, its reason and, for
   * `SKIPPED:LIMITS`, the limit passed (`maxDepth`, `maxMemberBytes`, ...).
   */
  skipped: Array<{ path: string; code: string; reason: string; limit?: string }>;
  /** How many were not looked into in all. */
  skipped_count: number;
  /** How many were not looked into, by `SKIPPED:*` code (all of them, not only the first 20). */
  skipped_by_code: Record<string, number>;
}

/** A member's answer, or why it has none. */
type Finding =
  | { path: string; result: ScanResult }
  | { path: string; comment: string; reason: string };

/** The `SKIPPED:*` comment of a skip code. */
function skipComment(code: SkipCode): string {
  return `SKIPPED:${code}`;
}

/** Verdicts in order of what decides: malicious, then what could not be seen, then suspicious. */
function rank(finding: Finding): number {
  if ("comment" in finding) return 2;
  const verdict = finding.result.verdict;
  return verdict === "malicious" ? 0 : verdict === "unknown" ? 2 : verdict === "suspicious" ? 3 : 4;
}

/**
 * Combines the outer answer and the members' into one: a member malicious is malicious (its
 * path in `metadata.unpack.detected_in`); else anything not looked into (a skip, a member
 * `unknown`) is `unknown` with its `SKIPPED:*` code first; else a member suspicious is
 * suspicious; else the outer answer (benign).
 */
function combine(outer: ScanResult, findings: Finding[], report: UnpackReport): ScanResult {
  const decisive = findings.reduce<Finding | undefined>(
    (best, finding) => (best === undefined || rank(finding) < rank(best) ? finding : best),
    undefined,
  );
  const metadata = { ...outer.metadata, unpack: report };
  if (!decisive || rank(decisive) >= rank({ path: "", result: outer })) {
    return { ...outer, metadata };
  }
  if ("comment" in decisive || decisive.result.verdict === "unknown") {
    const comment = "comment" in decisive ? decisive.comment : firstSkip(decisive.result);
    const reason = "comment" in decisive ? decisive.reason : "could not be looked into";
    return {
      verdict: "unknown",
      confidence: 0,
      metadata: {
        ...metadata,
        comments: [comment, `${decisive.path}: ${reason}`, ...(outer.metadata.comments ?? [])],
      },
    };
  }
  const { result } = decisive;
  return {
    verdict: result.verdict,
    confidence: result.confidence,
    metadata: {
      ...metadata,
      malware_family: result.metadata.malware_family,
      unpack: { ...report, detected_in: decisive.path },
    },
  };
}

/** The first `SKIPPED:*`/`ERROR:*` comment of an unknown answer, or `SKIPPED:UNSUPPORTED`. */
function firstSkip(result: ScanResult): string {
  return (
    result.metadata.comments?.find((comment) => /^(SKIPPED|ERROR):/.test(comment)) ??
    "SKIPPED:UNSUPPORTED"
  );
}

/** A member scan that failed for that member (not for the scan as a whole) as a finding. */
function failedMember(path: string, error: unknown): Finding {
  const { code, message } = publicError(error);
  return { path, comment: errorVerdictComments[code], reason: message };
}

/** Whether an error of a member's scan ends the whole scan (the deadline, the caller, the backend gone). */
function endsTheScan(error: unknown): boolean {
  return (
    EngineError.isInstance(error) &&
    ["SCAN_TIMEOUT", "SCAN_ABORTED", "BACKEND_UNAVAILABLE", "OVERLOADED"].includes(error.code)
  );
}

/**
 * A stream artifact read once into a replayable copy (in memory up to `memoryLimitBytes`, else
 * a private temp file), so that it can be scanned and unpacked; a replayable one as it is.
 */
async function replayable(
  artifact: Artifact,
  signal: AbortSignal,
  settings: ResolvedUnpackOptions,
): Promise<{ artifact: Artifact; dispose(): Promise<void> }> {
  if (artifact.replayable) return { artifact, dispose: async () => {} };
  const store = new MemberStore({
    limits: {
      ...settings.limits,
      maxMemberBytes: Number.MAX_SAFE_INTEGER,
      ratioFloorBytes: Number.POSITIVE_INFINITY,
    },
    budget: new ByteBudget(Number.POSITIVE_INFINITY),
    memoryLimitBytes: settings.memoryLimitBytes,
    temporaryDirectory: settings.temporaryDirectory,
  });
  try {
    const stored = await store.store(artifact.stream({ signal }), {
      filename: artifact.filename ?? "",
      compressedBytes: 1,
    });
    const copy = stored.artifact.path
      ? artifactFromFile(stored.artifact.path, copyFacts(artifact, stored.size))
      : artifactFromBytes(await stored.artifact.bytes(), copyFacts(artifact, stored.size));
    return { artifact: copy, dispose: () => store.close() };
  } catch (error) {
    await store.close();
    throw error;
  }
}

/**
 * A scanner that sees inside containers for `inner` (one that cannot unpack: YARA, a
 * third-party backend): it scans the outer bytes with `inner`, then every member `unpack`
 * finds, recursively, and answers once (see {@link combine}). It keeps `inner`'s name, so
 * verdict policies and metrics keep working, and its result is `inner`'s with
 * `metadata.unpack` (members, bytes, where a detection was, what was not looked into).
 * Bounded by the options' limits and the scan's deadline; a member scan that fails for that
 * member is not looked into (`unknown`), one that fails for the backend fails the scan.
 *
 * @example
 * const yara = createUnpackingScanner(createYaraScanner({ rulesDir: "./rules" }));
 * const result = await yara.scan(artifactFromFile("invoice.zip"));
 * console.log(result.verdict, result.metadata.unpack?.detected_in);
 */
export function createUnpackingScanner(
  inner: Scanner,
  options: UnpackOptions & {
    /**
     * Which members `inner` scans (all by default). A backend that unpacks some formats
     * itself (clamd) is given only the members of containers it cannot decode: the walk still
     * goes through every container, so what hides below is still found.
     */
    scanMember?: (member: UnpackedMember) => boolean;
  } = {},
): Scanner {
  const { scanMember = () => true, ...unpackOptions } = options;
  const settings = parseOptions(unpackOptionsSchema, unpackOptions, {
    where: "@engine/unpack: createUnpackingScanner",
  });
  // Wrappers with the same options share one walk of an artifact they scan at once.
  const walkKey = JSON.stringify(settings);
  const scan = async (artifact: Artifact, context: ScanContext): Promise<ScanResult> => {
    const { signal, deadline } = context;
    const copy = await replayable(artifact, signal, settings);
    try {
      return await scanUnpacking(copy.artifact, inner, { settings, walkKey }, scanMember, {
        signal,
        deadline,
      });
    } finally {
      await copy.dispose();
    }
  };
  const scanner = defineScanner({
    name: inner.name,
    scan,
    ...(inner.setup ? { setup: () => inner.setup?.() ?? Promise.resolve() } : {}),
    ...(inner.close ? { close: () => inner.close?.() ?? Promise.resolve() } : {}),
  });
  // Closing the wrapper closes `inner` even when it was set up by its caller, not through
  // the wrapper (the wrapper's own close only runs after its own setup).
  const closeWrapper = scanner.close;
  const close = async (): Promise<void> => {
    try {
      await closeWrapper?.();
    } finally {
      await inner.close?.();
    }
  };
  return Object.defineProperties(scanner, {
    signaturesVersion: { get: () => inner.signaturesVersion, enumerable: true },
    close: { value: close, enumerable: true },
    [Symbol.asyncDispose]: { value: close },
  });
}

/** The outer scan, then each member's, combined. */
async function scanUnpacking(
  artifact: Artifact,
  inner: Scanner,
  { settings, walkKey }: { settings: ResolvedUnpackOptions; walkKey: string },
  scanMember: (member: UnpackedMember) => boolean,
  options: { signal: AbortSignal; deadline: number | undefined },
): Promise<ScanResult> {
  // Joined before the first await, so that the other backends' wrappers scanning this
  // artifact now share the walk: each container decoded once. Whether there is anything to
  // walk is read by the walk's one look at the first and last bytes, taken while `inner` scans
  // (most artifacts are no container: their scan then costs only that look); the walk starts
  // from it, and does not read those bytes again. Where the look fails, the walk runs and
  // meets the failure itself.
  const walk = followWalk(artifact, settings, walkKey, options);
  try {
    const outer = await inner.scan(artifact, options);
    const report: UnpackReport = {
      version: unpackPackageVersion,
      members: 0,
      bytes: 0,
      detections: [],
      skipped: [],
      skipped_count: 0,
      skipped_by_code: {},
    };
    // Malicious as it is: what is inside cannot change the answer (nor waits for the look).
    if (outer.verdict === "malicious")
      return { ...outer, metadata: { ...outer.metadata, unpack: report } };
    if ((await walk.look)?.mayHold === false)
      return { ...outer, metadata: { ...outer.metadata, unpack: report } };
    const findings: Finding[] = [];
    for await (const event of walk.events) {
      if (event.kind === "member" && !scanMember(event.member)) continue;
      const finding = await findingOf(event, inner, options, report);
      if (!finding) continue;
      findings.push(finding);
      if ("result" in finding && finding.result.verdict === "malicious") break; // decided
    }
    return combine(outer, findings, report);
  } finally {
    await walk.leave(); // the walk's members on disk are removed before the answer
  }
}

/** One unpack event as a finding (scanning a member with `inner`), recorded in the report. */
async function findingOf(
  event: UnpackEvent,
  inner: Scanner,
  options: { signal: AbortSignal; deadline: number | undefined },
  report: UnpackReport,
): Promise<Finding | undefined> {
  if (event.kind === "container") return undefined;
  if (event.kind === "skipped") {
    const code = skipComment(event.code);
    report.skipped_count += 1;
    report.skipped_by_code[code] = (report.skipped_by_code[code] ?? 0) + 1;
    if (report.skipped.length < listedFindings)
      report.skipped.push({
        path: event.path,
        code,
        reason: event.reason,
        ...(event.limit ? { limit: event.limit } : {}),
      });
    return { path: event.path, comment: code, reason: event.reason };
  }
  const { member } = event;
  report.members += 1;
  report.bytes += member.size;
  try {
    const result = await inner.scan(member.artifact, options);
    if (
      (result.verdict === "malicious" || result.verdict === "suspicious") &&
      report.detections.length < listedFindings
    )
      report.detections.push({
        path: member.path,
        verdict: result.verdict,
        malware_family: result.metadata.malware_family,
      });
    return { path: member.path, result };
  } catch (error) {
    if (endsTheScan(error)) throw error;
    return failedMember(member.path, error);
  }
}
