import type { FileHandle } from "node:fs/promises";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative, sep } from "node:path";
import { pathToFileURL } from "node:url";
import type { ScanResult } from "@engine/core";
import { detectedIn, skippedMember } from "./member-paths.js";

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
 * error when it failed, and the member it could not look into: `yara: SKIPPED:ENCRYPTED
 * archive.zip!/x (why)`), else the result's comments.
 */
export function unknownReasons(result: ScanResult): string {
  const reasons = (result.metadata.backends ?? [])
    .filter((backend) => backend.verdict === "unknown")
    .map((backend) => {
      const member = skippedMember(backend);
      const where = member ? ` ${member.path} (${member.reason})` : "";
      return `${backend.name}: ${backend.reason ?? backend.error_code ?? "unknown"}${where}${backend.error ? ` (${backend.error})` : ""}`;
    });
  return reasons.join("; ") || (result.metadata.comments ?? []).join("; ") || "unknown";
}

/** The SARIF tool components (one per backend) and their rules (one per family), in order of first use. */
class SarifComponents {
  readonly components: SarifComponent[] = [];
  readonly #componentIndex = new Map<string, number>();
  readonly #ruleIndex = new Map<string, number>();

  /** The index of a backend's component, added (with its version) on first use. */
  componentFor(name: string, version: string | undefined): number {
    let index = this.#componentIndex.get(name);
    if (index === undefined) {
      index = this.components.push({ name, ...(version ? { version } : {}), rules: [] }) - 1;
      this.#componentIndex.set(name, index);
    }
    return index;
  }

  /** The index of a family's rule in a component, added on first use. */
  ruleFor(component: number, family: string): number {
    const key = `${component}\u0000${family}`;
    let index = this.#ruleIndex.get(key);
    if (index === undefined) {
      const rules = (this.components[component] as SarifComponent).rules;
      index = rules.push({ id: family, shortDescription: { text: family } }) - 1;
      this.#ruleIndex.set(key, index);
    }
    return index;
  }
}

/** The SARIF results of one scanned file: one per backend that found something in it. */
function sarifResultsOf(path: string, result: ScanResult, tool: SarifComponents, root: string) {
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
      const member = detectedIn(backend);
      const component = tool.componentFor(
        backend.name,
        typeof scanner.vendor_version === "string" ? scanner.vendor_version : undefined,
      );
      return {
        ruleId: family,
        rule: {
          id: family,
          index: tool.ruleFor(component, family),
          toolComponent: { index: component },
        },
        level: backend.verdict === "malicious" ? "error" : "warning",
        kind: "fail",
        message: {
          text: `${backend.name} found ${family} (${backend.verdict})${member ? ` in ${member}` : ""}`,
        },
        locations: [{ physicalLocation: { artifactLocation: locationOf(path, root) } }],
        properties: {
          verdict: backend.verdict,
          combinedVerdict: result.verdict,
          ...(member ? { memberPath: member } : {}),
        },
      };
    });
}

/** JSON of a value, pretty-printed as if nested `depth` levels deep in the log. */
function nestedJson(value: unknown, depth: number): string {
  return JSON.stringify(value, null, 2).replaceAll("\n", `\n${"  ".repeat(depth)}`);
}

/** Writes text somewhere and resolves when it may be written more (back-pressure). */
export type TextSink = (text: string) => Promise<void>;

/**
 * A JSON array's items kept in a private temporary file, outside the heap: the file is
 * removed from its directory as soon as it is open (only the open descriptor holds it), so
 * nothing is left behind whatever ends the process. Opened on the first item.
 */
class SpooledItems {
  count = 0;
  #handle: FileHandle | undefined;
  #directory: string | undefined;

  /** Appends one item (its text, already indented). */
  async append(text: string): Promise<void> {
    this.#handle ??= await this.#open();
    await this.#handle.write(`${this.count === 0 ? "" : ","}\n${text}`);
    this.count += 1;
  }

  /** Writes the items appended so far, in order. */
  async copyTo(write: TextSink): Promise<void> {
    if (!this.#handle) return;
    for await (const chunk of this.#handle.createReadStream({
      start: 0,
      autoClose: false,
      encoding: "utf8",
    }))
      await write(chunk as string);
  }

  /** Closes the file (and removes it, where it could not be removed while open). */
  async close(): Promise<void> {
    await this.#handle?.close();
    this.#handle = undefined;
    if (this.#directory) await rm(this.#directory, { recursive: true, force: true });
    this.#directory = undefined;
  }

  async #open(): Promise<FileHandle> {
    const directory = await mkdtemp(join(tmpdir(), "microengine-sarif-"));
    const handle = await open(join(directory, "items.json"), "w+", 0o600);
    // POSIX: the open descriptor keeps the data. Elsewhere, close() removes it.
    const removed = await rm(directory, { recursive: true }).then(
      () => true,
      () => false,
    );
    if (!removed) this.#directory = directory;
    return handle;
  }
}

/** Writes one SARIF 2.1.0 log as a scan goes; see {@link createSarifLogWriter}. */
export interface SarifLogWriter {
  /** A scanned file: a result per detection; an `unknown` answer is an `error` notification. */
  scanned(path: string, result: ScanResult): Promise<void>;
  /** An entry that could not be scanned, and why: an `error` notification. */
  problem(path: string, problem: string): Promise<void>;
  /**
   * An entry with nothing to scan (a FIFO, a device, a cycle, a second path to a directory
   * already walked), and what it is: a `note` notification.
   */
  skipped(path: string, reason: string): Promise<void>;
  /** Writes the rest of the log: the tool and its components, the invocation and its notifications. */
  end(): Promise<void>;
  /** Releases the notifications' spool; call it whether or not the log was ended. */
  close(): Promise<void>;
}

/**
 * Writes a SARIF 2.1.0 log of a scan while it runs, holding no result: each detection is one
 * result (a malicious answer is level `error`, a suspicious one `warning`) written at once,
 * whose rule id is the malware family and whose tool component is the backend that found it
 * (`runs[0].tool.extensions`, with its version). Files that could not be scanned or looked
 * into (`unknown`) are `error` tool execution notifications, and then `executionSuccessful`
 * is false; skipped entries (FIFOs, devices, cycles, revisits) are `note` notifications.
 * Notifications come after the results in the log, so they are spooled to a private temporary
 * file (removed as soon as it is open) until {@link SarifLogWriter.end}. What stays in memory
 * is one component per backend and one rule per family found. Paths under `root` are relative
 * to it (`SCANROOT`), others are absolute `file:` URIs. Call the writer's methods one at a
 * time, in the order the log should list the entries.
 * @param write where the log goes
 * @param options.root the directory paths are made relative to (default: the working directory)
 */
export async function createSarifLogWriter(
  write: TextSink,
  options: { toolVersion: string; root?: string },
): Promise<SarifLogWriter> {
  const root = options.root ?? process.cwd();
  const tool = new SarifComponents();
  const errors = new SpooledItems();
  const notes = new SpooledItems();
  let results = 0;
  const notification = (level: "error" | "note", path: string, text: string) =>
    " ".repeat(12) +
    nestedJson(
      {
        level,
        message: { text },
        locations: [{ physicalLocation: { artifactLocation: locationOf(path, root) } }],
      },
      6,
    );
  const baseIds = { SCANROOT: { uri: pathToFileURL(`${root}${sep}`).href } };
  // Everything up to the results, which are written as they come.
  await write(
    `{\n  "$schema": "https://json.schemastore.org/sarif-2.1.0.json",\n  "version": "2.1.0",\n  "runs": [\n    {\n      "originalUriBaseIds": ${nestedJson(baseIds, 3)},\n      "results": [`,
  );
  return {
    async scanned(path, result) {
      for (const each of sarifResultsOf(path, result, tool, root)) {
        await write(`${results === 0 ? "" : ","}\n        ${nestedJson(each, 4)}`);
        results += 1;
      }
      if (result.verdict === "unknown")
        await errors.append(
          notification("error", path, `could not be looked into (${unknownReasons(result)})`),
        );
    },
    problem: (path, problem) => errors.append(notification("error", path, problem)),
    skipped: (path, reason) => notes.append(notification("note", path, reason)),
    async end() {
      const driver = { name: "microengine", version: options.toolVersion };
      await write(
        `${results === 0 ? "" : "\n      "}],\n      "tool": ${nestedJson({ driver, extensions: tool.components }, 3)},\n`,
      );
      await write(
        `      "invocations": [\n        {\n          "executionSuccessful": ${errors.count === 0},\n          "toolExecutionNotifications": [`,
      );
      await errors.copyTo(write);
      if (errors.count > 0 && notes.count > 0) await write(",");
      await notes.copyTo(write);
      const none = errors.count + notes.count === 0;
      await write(`${none ? "" : "\n          "}]\n        }\n      ]\n    }\n  ]\n}\n`);
    },
    async close() {
      await Promise.all([errors.close(), notes.close()]);
    },
  };
}
