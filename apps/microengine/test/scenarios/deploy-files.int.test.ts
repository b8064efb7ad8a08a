import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/operations/metrics.js";

// deploy/: the alert rules and the dashboard name only metrics the engine exports, and
// promtool (Debian's prometheus package, installed by the test script) accepts the rules and
// passes their unit tests.
const deploy = join(import.meta.dirname, "../../../../deploy");
const run = promisify(execFile);

/** Every series name the engine's registry exposes (histograms with their _bucket/_sum/_count). */
async function exportedNames(): Promise<Set<string>> {
  const metrics = createMetrics();
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === "histogram" || String(metric.type) === "summary")
      for (const suffix of ["_bucket", "_sum", "_count"]) names.add(`${metric.name}${suffix}`);
  }
  return names;
}

/** The metric names a text uses: engine_*, nodejs_* and process_* identifiers. */
function usedNames(text: string): string[] {
  return [...new Set(text.match(/\b(?:engine|nodejs|process)_[a-z0-9_]+\b/g) ?? [])].sort();
}

describe("deploy/", () => {
  it("uses only metrics the engine exports, in the alert rules and the dashboard", async () => {
    const exported = await exportedNames();
    for (const file of ["prometheus/engine-alerts.yml", "grafana/engine-dashboard.json"]) {
      const used = usedNames(await readFile(join(deploy, file), "utf8"));
      expect(used.length, file).toBeGreaterThan(5);
      expect(
        used.filter((name) => !exported.has(name)),
        `${file} uses metrics the engine does not export`,
      ).toEqual([]);
    }
    // The check can fail: a made-up name is caught.
    expect(
      usedNames("rate(engine_made_up_total[5m])").filter((name) => !exported.has(name)),
    ).toEqual(["engine_made_up_total"]);
  });

  it("covers answers late or dropped, backend errors, saturation, old signatures and no worker", async () => {
    const rules = await readFile(join(deploy, "prometheus/engine-alerts.yml"), "utf8");
    for (const alert of [
      "EngineAnswersLate",
      "EngineAnswersDropped",
      "EngineBackendErrors",
      "EngineSaturated",
      "EngineSignaturesTooOld",
      "EngineNoWorker",
    ])
      expect(rules).toContain(`alert: ${alert}`);
    const dashboard = JSON.parse(
      await readFile(join(deploy, "grafana/engine-dashboard.json"), "utf8"),
    );
    expect(dashboard.panels.length).toBeGreaterThan(10);
    for (const panel of dashboard.panels)
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
  });

  it("passes promtool check rules and promtool test rules", async () => {
    const directory = join(deploy, "prometheus");
    const checked = await run("promtool", ["check", "rules", "engine-alerts.yml"], {
      cwd: directory,
    });
    expect(checked.stdout).toMatch(/SUCCESS: 9 rules found/);
    const tested = await run("promtool", ["test", "rules", "engine-alerts.test.yml"], {
      cwd: directory,
    });
    expect(tested.stdout).toMatch(/SUCCESS/);
  });
});
