import { createYaraScanner } from "@engine/yara";
import type { BackendKind } from "./backend-kind.js";

/** The banner's warning when YARA runs the bundled rules: one EICAR rule. */
export const yaraBundledRulesWarning =
  "YARA has only the bundled EICAR rule: set RULES_DIR to a directory of your rules";

/**
 * YARA with RULES_DIR (or the bundled rules) on YARA_ENGINE. Rule files that do not compile at
 * start are skipped with a warning; a hot reload is strict (one broken file keeps every old rule).
 * Ready when a worker runs and rules are loaded; reloads on SIGHUP and RULES_WATCH.
 */
export const yaraBackend: BackendKind = {
  async build(wanted, { config, logger, metrics }) {
    if (!wanted)
      return { status: { name: "yara", running: false, reason: "not in ENGINE_BACKENDS" } };
    const yara = createYaraScanner({
      ...(config.RULES_DIR ? { rulesDir: config.RULES_DIR } : {}),
      engine: config.YARA_ENGINE,
      onDiagnostics: (diagnostics) => {
        const errors = diagnostics.filter((diagnostic) => diagnostic.severity === "error");
        if (errors.length > 0)
          logger.warn(
            { skipped: errors.length, first: errors[0] },
            "some YARA rule files do not compile and were skipped",
          );
      },
    });
    try {
      await yara.setup?.();
    } catch (error) {
      await Promise.allSettled([yara.close?.()]);
      throw error;
    }
    let rulesLoadedAt = Date.now();
    const engine =
      yara.engine === "native"
        ? `libyara ${yara.vendorVersion}`
        : `YARA-X ${yara.vendorVersion} (WebAssembly)`;
    return {
      backend: {
        name: yara.name,
        scanner: yara,
        status: {
          name: yara.name,
          running: true,
          reason: `${engine}, ${yara.ruleFileCount} rule file(s) from ${config.RULES_DIR ?? "the bundled rules"}, rules ${yara.signaturesVersion}`,
          ...(config.RULES_DIR ? {} : { warning: yaraBundledRulesWarning }),
        },
        readsRulesDirectory: true,
        health: async () => {
          const status = yara.status();
          const loadedAgeSeconds = Math.round((Date.now() - rulesLoadedAt) / 1000);
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
        },
        // Which engine runs changes answers (libyara and YARA-X differ on some rules).
        cacheKey: async () => yara.engine,
        reload: async () => {
          try {
            await yara.reload({ onCompileError: "fail" });
            rulesLoadedAt = Date.now();
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
        },
      },
    };
  },
};
