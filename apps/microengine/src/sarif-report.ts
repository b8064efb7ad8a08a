import { isAbsolute, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import type { ScanResult } from "@engine/core";

/** One scanned file and its combined result (with each backend's answer in `metadata.backends`). */
export interface ScannedFile {
  path: string;
  result: ScanResult;
}

/** One entry that could not be scanned (unreadable, a loop, a backend failure), and why. */
export interface ScanProblem {
  path: string;
  problem: string;
}

interface SarifRule {
  id: string;
  shortDescription: { text: string };
}

interface SarifComponent {
  name: string;
  version?: string;
  rules: SarifRule[];
}

function locationOf(path: string, root: string) {
  const inside = relative(root, path);
  // Each segment percent-encoded whole: `#`, `?`, `:` and `%` in a name stay part of the path
  // (a file named "javascript:x" must not read as a link with a scheme).
  return inside && !inside.startsWith("..") && !isAbsolute(inside)
    ? { uri: inside.split(sep).map(encodeURIComponent).join("/"), uriBaseId: "SCANROOT" }
    : { uri: pathToFileURL(path).href };
}

/**
 * Why a result is unknown: each backend's reason (`clamav: SKIPPED:ENCRYPTED`, with its public
 * error when it failed), else the result's comments.
 */
export function unknownReasons(result: ScanResult): string {
  const reasons = (result.metadata.backends ?? [])
    .filter((backend) => backend.verdict === "unknown")
    .map(
      (backend) =>
        `${backend.name}: ${backend.reason ?? backend.error_code ?? "unknown"}${backend.error ? ` (${backend.error})` : ""}`,
    );
  return reasons.join("; ") || (result.metadata.comments ?? []).join("; ") || "unknown";
}

/**
 * Builds a SARIF 2.1.0 log of a scan: one result per detection (a malicious answer is level
 * `error`, a suspicious one `warning`), whose rule id is the malware family and whose tool
 * component is the backend that found it (`runs[0].tool.extensions`, with its version). Files
 * that could not be scanned or looked into (`unknown`) are `error` tool execution
 * notifications, and then `executionSuccessful` is false; skipped entries (FIFOs, devices)
 * are `note` notifications. Paths under `root` are relative to it (`SCANROOT`), others are
 * absolute `file:` URIs.
 * @param options.root the directory paths are made relative to (default: the working directory)
 */
export function sarifReport(
  files: readonly ScannedFile[],
  problems: readonly ScanProblem[],
  options: { toolVersion: string; root?: string; skipped?: readonly ScanProblem[] },
) {
  const root = options.root ?? process.cwd();
  const components: SarifComponent[] = [];
  const componentIndex = new Map<string, number>();
  const ruleIndex = new Map<string, number>();
  const componentFor = (name: string, version: string | undefined): number => {
    let index = componentIndex.get(name);
    if (index === undefined) {
      index = components.push({ name, ...(version ? { version } : {}), rules: [] }) - 1;
      componentIndex.set(name, index);
    }
    return index;
  };
  const ruleFor = (component: number, family: string): number => {
    const key = `${component}\u0000${family}`;
    let index = ruleIndex.get(key);
    if (index === undefined) {
      const rules = (components[component] as SarifComponent).rules;
      index = rules.push({ id: family, shortDescription: { text: family } }) - 1;
      ruleIndex.set(key, index);
    }
    return index;
  };

  const results = files.flatMap(({ path, result }) => {
    const backends = result.metadata.backends ?? [
      {
        name: "engine",
        verdict: result.verdict,
        malware_family: result.metadata.malware_family,
        metadata: result.metadata,
      },
    ];
    return backends
      .filter((backend) => backend.verdict === "malicious" || backend.verdict === "suspicious")
      .map((backend) => {
        const scanner = (backend.metadata?.scanner ?? {}) as { vendor_version?: unknown };
        const family = backend.malware_family || `${backend.verdict}-without-family`;
        const component = componentFor(
          backend.name,
          typeof scanner.vendor_version === "string" ? scanner.vendor_version : undefined,
        );
        return {
          ruleId: family,
          rule: {
            id: family,
            index: ruleFor(component, family),
            toolComponent: { index: component },
          },
          level: backend.verdict === "malicious" ? "error" : "warning",
          kind: "fail",
          message: { text: `${backend.name} found ${family} (${backend.verdict})` },
          locations: [{ physicalLocation: { artifactLocation: locationOf(path, root) } }],
          properties: { verdict: backend.verdict, combinedVerdict: result.verdict },
        };
      });
  });

  const unknowns = files
    .filter(({ result }) => result.verdict === "unknown")
    .map(({ path, result }) => ({
      path,
      problem: `could not be looked into (${unknownReasons(result)})`,
    }));
  const notification =
    (level: "error" | "note") =>
    ({ path, problem }: ScanProblem) => ({
      level,
      message: { text: problem },
      locations: [{ physicalLocation: { artifactLocation: locationOf(path, root) } }],
    });
  return {
    $schema: "https://json.schemastore.org/sarif-2.1.0.json",
    version: "2.1.0" as const,
    runs: [
      {
        tool: {
          driver: { name: "microengine", version: options.toolVersion },
          extensions: components,
        },
        originalUriBaseIds: { SCANROOT: { uri: pathToFileURL(`${root}${sep}`).href } },
        invocations: [
          {
            executionSuccessful: problems.length === 0 && unknowns.length === 0,
            toolExecutionNotifications: [
              ...problems.map(notification("error")),
              ...unknowns.map(notification("error")),
              ...(options.skipped ?? []).map(notification("note")),
            ],
          },
        ],
        results,
      },
    ],
  };
}
