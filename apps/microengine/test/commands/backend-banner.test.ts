import pino from "pino";
import { describe, expect, it } from "vitest";
import { leftOutStatus } from "../../src/backends/backend-kind.js";
import { backendBanner, logBackendStatuses } from "../../src/commands/backend-banner.js";

/** serve's start banner as log lines: level and message. */
function logged(statuses: Parameters<typeof logBackendStatuses>[0]["statuses"]) {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino(
    { level: "info" },
    { write: (line: string) => void lines.push(JSON.parse(line)) },
  );
  logBackendStatuses({ statuses, cache: "off" }, logger);
  return lines.map(({ level, msg }) => [pino.levels.labels[level], msg]);
}

describe("the start banner", () => {
  it("warns when a backend is off for want of what it needs, not when ENGINE_BACKENDS leaves it out", () => {
    const noClamd = {
      name: "clamav",
      running: false,
      reason: "clamd not installed (apt-get install clamav-daemon) and CLAMD_* unset",
    };
    expect(logged([noClamd, leftOutStatus("yara")])).toEqual([
      ["warn", `clamav: off (${noClamd.reason})`],
      ["info", "yara: off (not in ENGINE_BACKENDS)"],
      ["info", "result cache: off"],
    ]);
  });

  it("logs a running backend at info and its warning (test signatures only, and why) at warn", () => {
    const yara = {
      name: "yara",
      running: true,
      reason: "YARA-X 1.0 (WebAssembly), 1 rule file(s) from the bundled rules",
      warning: "YARA has only the bundled EICAR rule: set RULES_DIR to a directory of your rules",
    };
    expect(logged([yara]).slice(0, 2)).toEqual([
      ["info", `yara: on (${yara.reason})`],
      ["warn", yara.warning],
    ]);
    expect(backendBanner([yara])).toContain(`WARNING: ${yara.warning}`);
  });
});
