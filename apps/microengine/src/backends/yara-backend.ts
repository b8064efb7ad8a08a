import { createYaraScanner, type RuleDiagnostic, type YaraScanner } from "@engine/yara";
import type { Logger } from "pino";
import { backendByteLimits } from "../config/backend-byte-limits.js";
import type { EngineMetrics } from "../operations/metrics.js";
import type { SignatureCoverage } from "../protocol/coverage.js";
import {
  type BackendBuildContext,
  type BackendHealth,
  type BackendKind,
  type BackendStatus,
  leftOutStatus,
} from "./backend-kind.js";
import { type UnpackSetting, withUnpacking } from "./unpacking-backend.js";

/** The banner's warning when YARA runs the bundled rules: one EICAR rule. */
export const yaraBundledRulesWarning =
  "YARA has only the bundled EICAR rule: set RULES_DIR to a directory of your rules";

/** The settings YARA reads. */
type YaraSetting = "RULES_DIR" | "YARA_ENGINE" | UnpackSetting;

/** When the rules in use were loaded (at start, then at each successful reload). */
interface RulesLoaded {
  at: number;
}

/**
 * YARA with RULES_DIR (or the bundled rules) on YARA_ENGINE. Rule files that do not compile at
 * start are skipped with a warning; a hot reload is strict (one broken file keeps every old rule).
 * Ready when a worker runs and rules are loaded; reloads on SIGHUP and RULES_WATCH. With UNPACK
 * it scans the members of containers too.
 */
export const yaraBackend: BackendKind = {
  async build(wanted, { config, logger, metrics }: BackendBuildContext<YaraSetting>) {
    if (!wanted) return { status: leftOutStatus("yara") };
    const yara = createYaraScanner({
      ...(config.RULES_DIR ? { rulesDir: config.RULES_DIR } : {}),
      engine: config.YARA_ENGINE,
      // At least ARTIFACT_MAX_BYTES (YARA-X holds the whole file in memory to scan it).
      maxScanBytes: backendByteLimits(config).yaraMaxScanBytes,
      onDiagnostics: (diagnostics) => warnSkippedRuleFiles(diagnostics, logger),
    });
    try {
      await yara.setup?.();
    } catch (error) {
      await Promise.allSettled([yara.close?.()]);
      throw error;
    }
    const rulesLoaded: RulesLoaded = { at: Date.now() };
    // With UNPACK, it sees inside containers (health, reloads and the banner stay YARA's own).
    return {
      backend: withUnpacking(
        {
          name: yara.name,
          scanner: yara,
          status: yaraBanner(yara, config.RULES_DIR),
          readsRulesDirectory: true,
          health: async () => ({
            ...yaraHealth(yara, rulesLoaded, metrics),
            coverage: yaraCoverage(yara, config.RULES_DIR),
          }),
          coverage: () => yaraCoverage(yara, config.RULES_DIR),
          // Which engine runs changes answers (libyara and YARA-X differ on some rules).
          cacheKey: async () => yara.engine,
          reload: () => reloadYaraRules(yara, rulesLoaded, logger, metrics),
        },
        config,
      ),
    };
  },
};

/**
 * YARA's coverage: real (`signatures`) only with rules of RULES_DIR loaded; the bundled rules
 * are one EICAR rule (`test-signatures`).
 */
function yaraCoverage(yara: YaraScanner, rulesDirectory: string | undefined): SignatureCoverage {
  return rulesDirectory && yara.ruleFileCount > 0 ? "signatures" : "test-signatures";
}

/** At start: the rule files that do not compile are skipped, with one warning. */
function warnSkippedRuleFiles(diagnostics: RuleDiagnostic[], logger: Logger): void {
  const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error");
  if (errors.length > 0)
    logger.warn(
      { skipped: errors.length, first: errors[0] },
      "some YARA rule files do not compile and were skipped",
    );
}

/** YARA's banner line: its engine, how many rule files from where, the rules' version. */
function yaraBanner(yara: YaraScanner, rulesDirectory: string | undefined): BackendStatus {
  const engine =
    yara.engine === "native"
      ? `libyara ${yara.vendorVersion}`
      : `YARA-X ${yara.vendorVersion} (WebAssembly)`;
  return {
    name: yara.name,
    running: true,
    reason: `${engine}, ${yara.ruleFileCount} rule file(s) from ${rulesDirectory ?? "the bundled rules"}, rules ${yara.signaturesVersion}`,
    ...(rulesDirectory ? {} : { warning: yaraBundledRulesWarning }),
  };
}

/** YARA's readiness: a worker runs and rules are loaded; publishes the rules' age. */
function yaraHealth(
  yara: YaraScanner,
  rulesLoaded: RulesLoaded,
  metrics: EngineMetrics | undefined,
): BackendHealth {
  const status = yara.status();
  const loadedAgeSeconds = Math.round((Date.now() - rulesLoaded.at) / 1000);
  metrics?.signaturesAge.set({ backend: yara.name }, loadedAgeSeconds);
  return {
    ok: status.ready && yara.ruleFileCount > 0,
    engine: yara.engine,
    vendorVersion: yara.vendorVersion,
    ruleFiles: yara.ruleFileCount,
    rules: yara.signaturesVersion,
    rulesLoadedAgeSeconds: loadedAgeSeconds,
    workers: status.workers,
    poolSize: status.size,
    busy: status.busy,
    queued: status.queued,
    maxQueued: status.maxQueued,
    ...(status.lastFailure ? { problem: "no worker could start; retrying" } : {}),
  };
}

/** A strict reload: one rule file that does not compile keeps every old rule. Logs and counts. */
async function reloadYaraRules(
  yara: YaraScanner,
  rulesLoaded: RulesLoaded,
  logger: Logger,
  metrics: EngineMetrics | undefined,
): Promise<boolean> {
  try {
    await yara.reload({ onCompileError: "fail" });
    rulesLoaded.at = Date.now();
    metrics?.signaturesReloads.inc({ backend: yara.name });
    logger.info(
      { backend: yara.name, ruleFiles: yara.ruleFileCount, rules: yara.signaturesVersion },
      "YARA rules reloaded",
    );
    return true;
  } catch (error) {
    metrics?.rulesReloadFailures.inc({ backend: yara.name });
    logger.error(
      { backend: yara.name, err: error, rules: yara.signaturesVersion },
      "YARA rules NOT reloaded: the last good rules stay in use",
    );
    return false;
  }
}
