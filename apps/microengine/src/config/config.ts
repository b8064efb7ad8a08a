import { z } from "zod";
import { redactUrls } from "../operations/redact.js";
import { parseVerdictPolicy, type VerdictPolicySetting } from "./verdict-policy-setting.js";

const booleanText = z
  .union([z.boolean(), z.enum(["1", "0", "true", "false", "yes", "no", ""])])
  .transform((value) => value === true || value === "1" || value === "true" || value === "yes");
const list = z.string().transform((value) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0),
);
const integer = (minimum: number, maximum: number) =>
  z.coerce.number().int().min(minimum).max(maximum);

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

/**
 * Every setting of the engine, by its environment variable. Flags override variables and are
 * validated by the same schema, so a message always names the variable.
 */
export const engineConfigSchema = z.object({
  /** HTTP port. Default 8080. */
  PORT: integer(0, 65535).default(8080),
  /** Address to listen on. Default 127.0.0.1 (loopback only). */
  HOST: z.string().min(1).default("127.0.0.1"),
  /** Shared secret for X-POLYSWARM-SIGNATURE (HMAC-SHA256 of the raw body). Required unless INSECURE_NO_WEBHOOK_SECRET. */
  WEBHOOK_SECRET: z.string().min(1).optional(),
  /** Run without webhook signatures (warned at every start). Default false. */
  INSECURE_NO_WEBHOOK_SECRET: booleanText.default(false),
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
  /** Hosts artifacts may be downloaded from (comma list; `*.example.com` for subdomains). Default: none. */
  ARTIFACT_ALLOWED_HOSTS: list.default([]),
  /** Allow artifact hosts that resolve to private, loopback or link-local addresses. Default false. */
  ARTIFACT_ALLOW_PRIVATE_ADDRESSES: booleanText.default(false),
  /** Allow `file:` artifact URIs. Default false. */
  ARTIFACT_ALLOW_FILE_URIS: booleanText.default(false),
  /** Largest artifact, in bytes (downloads, the scan API body). Default 100 MiB. */
  ARTIFACT_MAX_BYTES: integer(1, 2 ** 40).default(100 * 1024 * 1024),
  /**
   * Largest webhook body, in bytes, refused with 413 before it is parsed or its signature
   * checked. A `data:` artifact travels inside the body and counts (base64 adds a third).
   * Default 1 MiB.
   */
  WEBHOOK_MAX_BYTES: integer(1024, 256 * 1024 * 1024).default(1024 * 1024),
  /** Hosts `response_url` may name (comma list; `*.example.com` for subdomains). Default: any public host. */
  RESPONSE_ALLOWED_HOSTS: list.optional(),
  /**
   * Open HTTP connections at most. At the cap a new connection makes room: an idle keep-alive
   * connection is closed, else the slowest one still sending its request; one whose request has
   * arrived and is being handled never is, and the new one is refused only when every open one
   * is such (see connection-guard.ts). Default 1024.
   */
  HTTP_MAX_CONNECTIONS: integer(1, 1_000_000).default(1024),
  /** Bounties downloading or scanning at once. Default 16. */
  BOUNTY_CONCURRENCY: integer(1, 4096).default(16),
  /**
   * Bounties that may wait for a slot. Past it (or past their deadline while waiting) a bounty
   * is answered unknown with SKIPPED:OVERLOADED; the scan API answers 503. Default 1000.
   */
  BOUNTY_BACKLOG: integer(0, 1_000_000).default(1000),
  /** Bytes the waiting bounties may hold (their bodies: a data: artifact counts). Default 64 MiB. */
  BOUNTY_BACKLOG_BYTES: integer(0, 2 ** 40).default(64 * 1024 * 1024),
  /** Bid strategy: linear (default), conservative, aggressive. */
  BID_STRATEGY: z.enum(["linear", "conservative", "aggressive"]).default("linear"),
  /** Bounty filters: only bounties matching every key=value (metadata or mimetype, artifact_type) are scanned. */
  BOUNTY_ACCEPT: list.default([]),
  /** Bounties matching any key=value are answered unknown without scanning. */
  BOUNTY_REJECT: list.default([]),
  /** key=value filters that raise the bid's confidence by 20 % (clamped). */
  BID_FAVOR: list.default([]),
  /** key=value filters that lower the bid's confidence by 20 % (clamped). */
  BID_PENALIZE: list.default([]),
  /** Time kept before a bounty's expiration to deliver the answer, in ms. Default 3000. */
  ANSWER_MARGIN_MS: integer(100, 600_000).default(3000),
  /** Queue mode: Redis URL (redis://host:6379). serve then queues bounties; microengine worker scans them. */
  QUEUE_URL: z
    .string()
    .regex(/^rediss?:\/\//, "a redis:// or rediss:// URL")
    .optional(),
  /**
   * The BullMQ queue of bounties (its deadline jobs go to `<QUEUE_NAME>-deadlines`, its answer
   * records under `<QUEUE_NAME>:answer:`). Letters, digits, `.`, `_`, `-`. Default engine-bounties.
   */
  QUEUE_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, "letters, digits, '.', '_' and '-' (BullMQ refuses ':')")
    .default("engine-bounties"),
  /**
   * Queue mode: the secret (the same for serve and every worker, at least 16 characters) under
   * which what the engine reads back from Redis is authenticated (HMAC-SHA256): queued
   * bounties, deadline jobs, answer records, cached results. Required with QUEUE_URL.
   */
  QUEUE_SECRET: z.string().min(16, "at least 16 characters (e.g. openssl rand -hex 32)").optional(),
  /** Port of a queue worker's /healthz, /readyz and /metrics (on HOST). Default 8081; 0 picks a free one. */
  WORKER_PORT: integer(0, 65535).default(8081),
  /** Bounties a worker handles at once. Default 4. */
  WORKER_CONCURRENCY: integer(1, 256).default(4),
  /**
   * Bearer token for POST /scan. Default: none, and then the scan API answers only when HOST is
   * loopback (an open scan API on a public address would let anyone use the backends).
   */
  SCAN_API_TOKEN: z.string().min(1).optional(),
  /** Scans the scan API runs at once (its own slots: uploads never take the bounties'). Default 4. */
  SCAN_API_CONCURRENCY: integer(1, 4096).default(4),
  /** Scan API requests that may wait for a slot; past it, 503 with Retry-After. Default 64. */
  SCAN_API_BACKLOG: integer(0, 1_000_000).default(64),
  /** pino level. Default info. */
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  /** json (default) or pretty (one readable line per event). */
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
});

/** The engine's validated settings. */
export type EngineConfig = z.output<typeof engineConfigSchema>;

/** Thrown when settings do not validate; the message names each variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  - ${problem}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/**
 * Reads the settings from the environment, with flags (already mapped to variable names)
 * taking precedence. Empty variables count as unset.
 */
export function loadConfig(
  environment: NodeJS.ProcessEnv,
  overrides: Partial<Record<keyof EngineConfig, unknown>> = {},
): EngineConfig {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(engineConfigSchema.shape)) {
    const value = overrides[key as keyof EngineConfig] ?? environment[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = engineConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = String(issue.path[0] ?? "configuration");
        const got = input[variable];
        // A secret is never echoed, not even a wrong one.
        const shown = /(SECRET|TOKEN)$/.test(variable)
          ? `${String(got).length} characters`
          : redactUrls(JSON.stringify(got) ?? String(got));
        return `${variable}: ${issue.message} (got ${shown})`;
      }),
    );
  }
  const config = parsed.data;
  if (config.CLAMD_SOCKET && config.CLAMD_HOST) {
    throw new ConfigError(["CLAMD_SOCKET and CLAMD_HOST: set one of them, not both"]);
  }
  if (config.CLAMD_HOSTS && (config.CLAMD_SOCKET || config.CLAMD_HOST || config.CLAMD_PORT)) {
    throw new ConfigError([
      "CLAMD_HOSTS and CLAMD_SOCKET/CLAMD_HOST/CLAMD_PORT: set the pool or one clamd, not both",
    ]);
  }
  return config;
}
