import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ViteUserConfig } from "vitest/config";

/**
 * The vitest configuration every package uses: a `unit` project (`test/**\/*.test.ts`, no
 * daemons, fast) and an `integration` project (`test/**\/*.int.test.ts`, real clamd/redis).
 * When ENGINE_TEST_REPORT_DIR is set (scripts/test.sh), a JSON report is written there too,
 * for the suite's one-line summary.
 */
export function engineVitestConfig(
  packageDirectory: string,
  options: { define?: Record<string, string>; integrationSetup?: string[] } = {},
): ViteUserConfig {
  const { name } = JSON.parse(readFileSync(join(packageDirectory, "package.json"), "utf8"));
  const reportDirectory = process.env.ENGINE_TEST_REPORT_DIR;
  const reportName = `${name.replace(/[@/]/g, "_")}-${process.pid}-${Date.now()}.json`;
  return {
    ...(options.define ? { define: options.define } : {}),
    test: {
      // Tests of timers that must survive garbage collection force it (nodejs/node#57736).
      execArgv: ["--expose-gc"],
      ...(reportDirectory
        ? {
            reporters: ["default", "json"],
            outputFile: { json: join(reportDirectory, reportName) },
          }
        : {}),
      projects: [
        {
          extends: true,
          test: {
            name: "unit",
            include: ["test/**/*.test.ts"],
            exclude: ["test/**/*.int.test.ts"],
            // CI runs every package's suite at once on 2 cores: a test whose first use of a
            // library warms it up (fast-check: ~1 s alone) took 5.2 s there and hit vitest's
            // default 5 s. Tests measure their own bounds; this is only the safety net.
            testTimeout: 20_000,
          },
        },
        {
          extends: true,
          test: {
            name: "integration",
            include: ["test/**/*.int.test.ts"],
            globalSetup: options.integrationSetup ?? [],
            testTimeout: 60_000,
            hookTimeout: 60_000,
          },
        },
      ],
    },
  };
}
