import {
  BackendUnavailableError,
  defineScanner,
  parseOptions,
  type Scanner,
  type ScanResult,
  verdictMetadata,
} from "@engine/core";
import { type ClamavScannerOptions, clamavScannerOptionsSchema } from "./clamav-scanner-options.js";
import { ClamdAlertGuard, type ClamdAlertStatus } from "./clamd-alert-guard.js";
import { ClamdClient, type ClamdScanOutcome } from "./clamd-client.js";
import { clamdConnectionOptionsSchema } from "./clamd-client-options.js";
import { ClamdPool } from "./clamd-pool.js";
import type { ClamdVersion } from "./clamd-reply.js";
import { clamavPackageVersion } from "./version.js";

/** A ClamAV scanner: the `Scanner` contract plus access to clamd. */
export interface ClamavScanner extends Scanner {
  /** The clamd client the scanner uses (ping, stats, version, ...): a `ClamdPool` with `hosts`. */
  readonly client: ClamdClient | ClamdPool;
  /** clamd's `VERSION` as cached for the metadata (fetched on first use). */
  version(): Promise<ClamdVersion>;
  /** Asks clamd to reload its databases and refreshes the cached version. */
  reload(): Promise<void>;
  /**
   * With `verifyAlerts`: what is known of the daemons' alert settings (never waits; starts a
   * probe in the background where one is due). Without it: `undefined`.
   */
  alertStatus(): ClamdAlertStatus | undefined;
  /**
   * clamd's database version as last reported (refreshed in the background after
   * `versionMaxAgeMs`, at once after {@link ClamavScanner.reload}), or the `signaturesVersion`
   * option when clamd has no official database; `undefined` before setup.
   */
  readonly signaturesVersion: string | undefined;
}

interface CachedVersion {
  value: ClamdVersion;
  fetchedAt: number;
}

/**
 * A ClamAV scanner on our own clamd client.
 *
 * | clamd says | verdict | confidence | metadata |
 * | --- | --- | --- | --- |
 * | `OK` | `benign` | 1 | |
 * | `<Signature> FOUND` | `malicious` | `confidence` (1) | `malware_family` = signature |
 * | `Heuristics.* FOUND` | `heuristicVerdict` (`suspicious`) | `heuristicConfidence` (0.5) | `heuristic: true` |
 * | `Heuristics.Limits.Exceeded.* FOUND` | `unknown` | 0 | comments `SKIPPED:LIMITS`, `clamd: <signature>` |
 * | `Heuristics.Encrypted.* FOUND` | `unknown` | 0 | comments `SKIPPED:ENCRYPTED`, `clamd: <signature>` |
 * | size limit, clamd down, timeout, garbage | throws a typed error | | |
 *
 * The `unknown` rows are inconclusive: clamd could not look inside, so a multi-engine never
 * lets another backend's `benign` stand for it. clamd only reports them with the alert
 * settings (`requiredClamdAlertSettings`; the managed clamd has them, `checkClamdAlerts`
 * tests a clamd of yours); without them it answers `OK` for what it could not inspect.
 *
 * `scanner.vendor_version` is the ClamAV engine version and `signatures_version` the
 * database version, from `VERSION`, cached (see `versionMaxAgeMs`) and never fetched per scan.
 *
 * @example
 * await using scanner = createClamavScanner({ socket: "/run/clamav/clamd.ctl" });
 * const result = await scanner.scan(artifactFromFile("upload.bin"));
 */
export function createClamavScanner(options: ClamavScannerOptions = {}): ClamavScanner {
  const settings = parseOptions(clamavScannerOptionsSchema, options, {
    where: "@engine/clamav: createClamavScanner",
    hint: "See the @engine/clamav README for the options.",
  });
  const {
    name,
    confidence,
    heuristicVerdict,
    heuristicConfidence,
    versionMaxAgeMs,
    signaturesVersion,
    verifyAlerts,
    alertCheckMaxAgeMs,
  } = settings;
  const clientOptionKeys = Object.keys(clamdConnectionOptionsSchema.shape);
  const clientOptions = Object.fromEntries(
    Object.entries(settings).filter(([key]) => clientOptionKeys.includes(key)),
  );
  const client: ClamdClient | ClamdPool = settings.hosts
    ? new ClamdPool(settings.hosts, clientOptions)
    : new ClamdClient(clientOptions);
  const guard = verifyAlerts
    ? new ClamdAlertGuard("clients" in client ? client.clients : [client], alertCheckMaxAgeMs)
    : undefined;

  let cached: CachedVersion | undefined;
  let refreshing: Promise<ClamdVersion> | undefined;
  const refreshVersion = (): Promise<ClamdVersion> => {
    refreshing ??= client
      .version({ deadline: Date.now() + client.options.readTimeoutMs })
      .then((value) => {
        cached = { value, fetchedAt: Date.now() };
        return value;
      })
      .finally(() => {
        refreshing = undefined;
      });
    return refreshing;
  };
  const currentVersion = async (): Promise<ClamdVersion> => {
    if (!cached) return refreshVersion();
    if (Date.now() - cached.fetchedAt > versionMaxAgeMs) refreshVersion().catch(() => {});
    return cached.value;
  };

  const toResult = (outcome: ClamdScanOutcome, version: ClamdVersion): ScanResult => {
    const builder = verdictMetadata()
      .product("clamav")
      .scanner({
        version: clamavPackageVersion,
        vendor_version: version.engineVersion,
        ...((version.databaseVersion ?? signaturesVersion)
          ? { signatures_version: version.databaseVersion ?? signaturesVersion }
          : {}),
      })
      .set("clamav", { reply: outcome.reply.kind, mode: outcome.mode });
    const { reply } = outcome;
    if (reply.kind === "ok") return { verdict: "benign", confidence: 1, metadata: builder.build() };
    if (reply.kind === "error") {
      throw new BackendUnavailableError({
        message: `@engine/clamav: clamd could not scan the artifact: ${reply.message}`,
        hint: "Check clamd's log; the artifact was not scanned.",
        scanner: name,
      });
    }
    if (reply.limitsExceeded || reply.encrypted) {
      const comment = reply.encrypted ? "SKIPPED:ENCRYPTED" : "SKIPPED:LIMITS";
      const metadata = builder.comment(comment, `clamd: ${reply.signature}`).build();
      return { verdict: "unknown", confidence: 0, metadata };
    }
    builder.malwareFamily(reply.signature);
    if (reply.heuristic) {
      return {
        verdict: heuristicVerdict,
        confidence: heuristicConfidence,
        metadata: builder.heuristic().build(),
      };
    }
    return { verdict: "malicious", confidence, metadata: builder.build() };
  };

  const scanner = defineScanner({
    name,
    setup: async () => {
      await client.ping({ deadline: Date.now() + client.options.connectTimeoutMs + 1000 });
      await refreshVersion();
    },
    close: () => client.close(),
    // The scan context's signal already fires at the deadline: the client uses it as it is.
    scan: async (artifact, context) => {
      const outcome = await client.scan(artifact, context);
      const result = toResult(outcome, await currentVersion());
      // A clean answer stands only from a daemon that raises its alerts (verifyAlerts).
      if (guard && result.verdict === "benign") await guard.confirm(context.signal);
      return result;
    },
  });

  Object.defineProperty(scanner, "signaturesVersion", {
    // The database version clamd reported last (refreshed in the background when older than
    // versionMaxAgeMs, and at once after reload()), or the signaturesVersion option.
    get: (): string | undefined => {
      if (cached && Date.now() - cached.fetchedAt > versionMaxAgeMs)
        refreshVersion().catch(() => {});
      return cached?.value.databaseVersion ?? signaturesVersion;
    },
    enumerable: true,
  });
  return Object.assign(scanner as Scanner & { readonly signaturesVersion: string | undefined }, {
    client,
    version: currentVersion,
    alertStatus: () => guard?.status(),
    reload: async () => {
      await client.reload();
      cached = undefined;
      await refreshVersion().catch(() => {});
    },
  });
}
