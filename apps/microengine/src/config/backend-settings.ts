import { z } from "zod";
import { booleanText, integer, list } from "./setting-values.js";
import { parseVerdictPolicy, type VerdictPolicySetting } from "./verdict-policy-setting.js";

/** The backends an engine can run. */
export const backendNames = ["eicar", "clamav", "yara"] as const;
/** One of {@link backendNames}. */
export type BackendName = (typeof backendNames)[number];

/**
 * True when an ENGINE_BACKENDS entry names a third-party backend module rather than one of
 * {@link backendNames}: `npm:<package>` or a path (it contains `/`, or ends in `.js`, `.mjs`
 * or `.cjs`).
 */
export function isBackendModuleEntry(entry: string): boolean {
  return entry.startsWith("npm:") || entry.includes("/") || /\.(?:m|c)?js$/.test(entry);
}

/** A package name after `npm:` (`my-scanner`, `@scope/my-scanner`, optionally a subpath). */
const npmPackageEntry = /^npm:(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(?:\/[\w./-]+)?$/;

const backendEntry = z
  .string()
  .refine(
    (entry) =>
      (backendNames as readonly string[]).includes(entry) ||
      (isBackendModuleEntry(entry) && (!entry.startsWith("npm:") || npmPackageEntry.test(entry))),
    {
      error: (issue) =>
        `${JSON.stringify(issue.input)} is none of eicar, clamav, yara, a module path (./my-scanner.mjs) or npm:<package>`,
    },
  );

/** The backends: which run, where clamd is, YARA's rules, the verdict policy, the result cache. */
export const backendSettings = z.object({
  /**
   * Backends to run: comma list of eicar, clamav, yara, and third-party backend modules (a
   * path such as `./my-scanner.mjs`, or `npm:<package>`) exporting `createScanner()`.
   * Default: yara, plus clamav when one is reachable.
   */
  ENGINE_BACKENDS: list
    .pipe(
      z
        .array(backendEntry)
        .min(1, "name at least one of eicar, clamav, yara or a backend module")
        .refine((entries) => new Set(entries).size === entries.length, "an entry is named twice"),
    )
    .optional(),
  /** clamd host (TCP). */
  CLAMD_HOST: z.string().min(1).optional(),
  /** clamd port (TCP). Default 3310 when CLAMD_HOST is set. */
  CLAMD_PORT: integer(1, 65535).optional(),
  /**
   * Start even when the clamd of CLAMD_* answers OK for an encrypted zip or a nest past its
   * limits (its clamd.conf lacks AlertEncrypted* / AlertExceedsMax): warned at every start.
   * Default false: the engine refuses such a clamd.
   */
  INSECURE_CLAMD_WITHOUT_ALERTS: booleanText.default(false),
  /**
   * A pool of clamd daemons (comma list of host:port, [v6]:port or unix socket paths): scans
   * go to the least busy healthy one and fail over; a failed one is retried after a backoff.
   */
  CLAMD_HOSTS: list.pipe(z.array(z.string()).min(1, "name at least one clamd")).optional(),
  /** clamd unix socket. */
  CLAMD_SOCKET: z.string().min(1).optional(),
  /** Directory of YARA rules. Default: the rules bundled with @engine/yara. */
  RULES_DIR: z.string().min(1).optional(),
  /** Reload the YARA rules when a file in RULES_DIR changes (debounced), besides SIGHUP. Default false. */
  RULES_WATCH: booleanText.default(false),
  /**
   * YARA engine: auto (default: native libyara when @engine/yara-native loads, else
   * WebAssembly), wasm, native.
   */
  YARA_ENGINE: z.enum(["wasm", "native", "auto"]).default("auto"),
  /**
   * How long a conclusive answer is reused for the same content and signatures, in seconds.
   * 0 turns the result cache off. Default 3600.
   */
  CACHE_TTL_SECONDS: integer(0, 30 * 24 * 3600).default(3600),
  /** The in-memory result cache's bound, in bytes (queue mode shares the cache in Redis instead). Default 64 MiB. */
  CACHE_MAX_BYTES: integer(1024, 2 ** 40).default(64 * 1024 * 1024),
  /**
   * /readyz fails when clamd's official database is older than this, in hours. Default 72
   * (freshclam updates several times a day).
   */
  CLAMAV_MAX_DATABASE_AGE_HOURS: integer(1, 24 * 365).default(72),
  /** Verdict policy: any (default), majority, quorum:N, weighted:name=weight,...:threshold. */
  VERDICT_POLICY: z
    .string()
    .default("any")
    .transform((text, context): VerdictPolicySetting => {
      try {
        return { text, policy: parseVerdictPolicy(text) };
      } catch (error) {
        context.addIssue({ code: "custom", message: (error as Error).message });
        return z.NEVER;
      }
    }),
});
