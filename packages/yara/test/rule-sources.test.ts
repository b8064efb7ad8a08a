import { existsSync } from "node:fs";
import { mkdir, mkdtemp, open, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  createYaraScanner,
  defaultRuleSourceLimits,
  loadRuleSources,
  type RuleDiagnostic,
  type YaraScanner,
} from "../src/index.js";
import { makeFifo, releaseFifoReaders } from "./fifo-files.js";

// Each of these ended (before the fix) in a hang, minutes of work or hundreds of MB read; the
// test timeouts bound them, so a regression fails instead of hanging the run.
const fast = 5_000;

const directories: string[] = [];
const fifos: string[] = [];
const scanners: YaraScanner[] = [];
afterEach(async () => {
  // A reader blocked on a FIFO (the bug) is let go again and again until everything is closed.
  const release = () => {
    for (const fifo of fifos) releaseFifoReaders(fifo);
  };
  release();
  const releasing = setInterval(release, 10);
  try {
    await Promise.all(scanners.splice(0).map((scanner) => scanner.close?.()));
  } finally {
    clearInterval(releasing);
    release();
  }
  fifos.length = 0;
  await Promise.all(
    directories.splice(0).map((path) => rm(path, { recursive: true, force: true })),
  );
});

/** A fresh directory with `files` (relative path -> content). */
async function directoryWith(files: Record<string, string> = {}): Promise<string> {
  const path = await mkdtemp(join(tmpdir(), "engine-yara-sources-"));
  directories.push(path);
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(path, name, ".."), { recursive: true });
    await writeFile(join(path, name), content);
  }
  return path;
}

function fifoAt(path: string): string {
  makeFifo(path);
  fifos.push(path);
  return path;
}

const codes = (diagnostics: RuleDiagnostic[]) => diagnostics.map((entry) => entry.code);

describe("rule files that are not regular files", () => {
  it("refuses an include of a FIFO at once instead of blocking on it", {
    timeout: fast,
  }, async () => {
    const directory = await directoryWith({
      "main.yar": 'include "pipe.yar"\nrule a { condition: true }\n',
      "good.yar": "rule good { condition: true }\n",
    });
    fifoAt(join(directory, "pipe.yar"));
    const { sources, diagnostics } = await loadRuleSources({
      ruleFiles: [join(directory, "main.yar"), join(directory, "good.yar")],
    });
    expect(diagnostics).toEqual([
      expect.objectContaining({
        path: join(directory, "main.yar"),
        line: 1,
        code: "include-not-regular-file",
        message: expect.stringContaining("is a FIFO, not a regular file"),
      }),
    ]);
    expect(sources.map((source) => source.namespace)).toEqual(["good"]);
  });

  it("refuses a symlink to a FIFO in the rules directory (the walk) without blocking", {
    timeout: fast,
  }, async () => {
    const directory = await directoryWith({ "rules/good.yar": "rule good { condition: true }\n" });
    await symlink(fifoAt(join(directory, "pipe")), join(directory, "rules", "pipe.yar"));
    const { sources, diagnostics } = await loadRuleSources({
      rulesDir: join(directory, "rules"),
    });
    expect(diagnostics).toEqual([
      expect.objectContaining({
        path: join(directory, "rules", "pipe.yar"),
        code: "not-regular-file",
        message: expect.stringContaining("is a FIFO"),
      }),
    ]);
    expect(sources.map((source) => source.namespace)).toEqual(["good"]);
  });

  it("refuses an include of /dev/zero without reading it", { timeout: fast }, async () => {
    const { diagnostics } = await loadRuleSources({
      rules: 'include "/dev/zero"\nrule a { condition: true }\n',
    });
    expect(diagnostics).toEqual([
      expect.objectContaining({
        code: "include-not-regular-file",
        line: 1,
        message: expect.stringContaining("is a character device"),
      }),
    ]);
  });

  it("refuses a directory given as a rule file or an include", { timeout: fast }, async () => {
    const directory = await directoryWith({ "sub/x.yar": "rule x { condition: true }\n" });
    const { diagnostics } = await loadRuleSources({
      ruleFiles: [join(directory, "sub")],
      rules: 'include "/"\n',
    });
    expect(codes(diagnostics)).toEqual(["not-regular-file", "include-not-regular-file"]);
  });

  it("bounds a read by the bytes read, not the size stat reports (/proc files report 0)", {
    timeout: fast,
    skip: !existsSync("/proc/self/maps"),
  }, async () => {
    const { diagnostics } = await loadRuleSources({
      rules: 'include "/proc/self/maps"\n',
      limits: { maxFileBytes: 64 },
    });
    expect(diagnostics).toEqual([
      expect.objectContaining({
        code: "include-too-large",
        message: expect.stringContaining("ruleSourceLimits.maxFileBytes"),
      }),
    ]);
  });
});

describe("bounds on includes", () => {
  /** `l0.yar` includes `a/l1.yar` and `b/l1.yar` (a and b are symlinks to "."), and so on. */
  async function symlinkLadder(levels: number): Promise<string> {
    const files: Record<string, string> = {};
    for (let level = 0; level < levels; level += 1)
      files[`l${level}.yar`] = `include "a/l${level + 1}.yar"\ninclude "b/l${level + 1}.yar"\n`;
    files[`l${levels}.yar`] = "rule leaf { condition: true }\n";
    const directory = await directoryWith(files);
    await symlink(".", join(directory, "a"));
    await symlink(".", join(directory, "b"));
    return directory;
  }

  it("knows files by their real path: two symlinks to '.' inline each of 13 files once (was 2^12 copies)", {
    timeout: fast,
  }, async () => {
    const directory = await symlinkLadder(12);
    const { sources, diagnostics } = await loadRuleSources({
      ruleFiles: [join(directory, "l0.yar")],
    });
    expect(diagnostics).toEqual([]);
    expect(sources[0]?.source.match(/rule leaf/g)).toHaveLength(1);
  });

  it("ends 29 levels through two symlinks to '.' (2^29 expansions before) at the depth limit", {
    timeout: fast,
  }, async () => {
    const directory = await symlinkLadder(29);
    const started = performance.now();
    const { sources, diagnostics } = await loadRuleSources({
      ruleFiles: [join(directory, "l0.yar")],
    });
    expect(sources).toEqual([]);
    expect(diagnostics).toEqual([
      expect.objectContaining({
        path: expect.stringMatching(/l16\.yar$/),
        line: 1,
        code: "include-too-deep",
        message: expect.stringContaining(
          `deeper than ${defaultRuleSourceLimits.maxIncludeDepth} levels (ruleSourceLimits.maxIncludeDepth)`,
        ),
      }),
    ]);
    // Not a timing test (the timeout is the bound); logged for the record.
    console.info(`29 symlinked levels: ${Math.round(performance.now() - started)} ms`);
  });

  it("bounds the include depth at 16 by default and takes a lower bound", {
    timeout: fast,
  }, async () => {
    const files: Record<string, string> = {};
    for (let level = 0; level < 17; level += 1)
      files[`d${level}.yar`] = `include "d${level + 1}.yar"\nrule r${level} { condition: true }\n`;
    files["d17.yar"] = "rule r17 { condition: true }\n";
    const directory = await directoryWith(files);
    const deepest = await loadRuleSources({ ruleFiles: [join(directory, "d1.yar")] });
    expect(deepest.diagnostics).toEqual([]); // d1 -> ... -> d17: 16 levels
    const tooDeep = await loadRuleSources({ ruleFiles: [join(directory, "d0.yar")] });
    expect(tooDeep.diagnostics).toEqual([
      expect.objectContaining({ path: join(directory, "d16.yar"), code: "include-too-deep" }),
    ]);
    const lower = await loadRuleSources({
      ruleFiles: [join(directory, "d15.yar")],
      limits: { maxIncludeDepth: 1 },
    });
    expect(codes(lower.diagnostics)).toEqual(["include-too-deep"]);
  });

  it("bounds the files inlined into one root (maxIncludedFiles)", { timeout: fast }, async () => {
    const files: Record<string, string> = {
      "root.yar": [1, 2, 3, 4].map((index) => `include "f${index}.yar"`).join("\n"),
    };
    for (const index of [1, 2, 3, 4])
      files[`f${index}.yar`] = `rule f${index} { condition: true }\n`;
    const directory = await directoryWith(files);
    const { diagnostics } = await loadRuleSources({
      ruleFiles: [join(directory, "root.yar")],
      limits: { maxIncludedFiles: 3 },
    });
    expect(diagnostics).toEqual([
      expect.objectContaining({
        line: 4,
        code: "too-many-includes",
        message: expect.stringContaining("more than 3 files (ruleSourceLimits.maxIncludedFiles)"),
      }),
    ]);
  });

  it("refuses a rule file or include over 32 MiB by default, without reading it", {
    timeout: fast,
  }, async () => {
    const directory = await directoryWith({ "main.yar": 'include "big.yar"\n' });
    const big = await open(join(directory, "big.yar"), "w");
    await big.truncate(defaultRuleSourceLimits.maxFileBytes + 1); // sparse
    await big.close();
    const { diagnostics } = await loadRuleSources({
      ruleFiles: [join(directory, "big.yar"), join(directory, "main.yar")],
    });
    expect(codes(diagnostics)).toEqual(["file-too-large", "include-too-large"]);
    expect(diagnostics[1]?.message).toContain(
      `limit of one rule file (ruleSourceLimits.maxFileBytes)`,
    );
  });

  it("bounds the bytes of a root with its includes, and of the whole load", {
    timeout: fast,
  }, async () => {
    const rule = (name: string) => `rule ${name} { condition: true }\n`.padEnd(40, " ");
    const directory = await directoryWith({
      "root.yar": 'include "a.yar"\ninclude "b.yar"\n',
      "a.yar": rule("a"),
      "b.yar": rule("b"),
      "c.yar": rule("c"),
      "d.yar": rule("d"),
    });
    const perRoot = await loadRuleSources({
      ruleFiles: [join(directory, "root.yar")],
      limits: { maxSourceBytes: 100 },
    });
    expect(perRoot.diagnostics).toEqual([
      expect.objectContaining({
        line: 2,
        code: "rule-source-too-large",
        message: expect.stringContaining("ruleSourceLimits.maxSourceBytes"),
      }),
    ]);
    const perLoad = await loadRuleSources({
      ruleFiles: ["c.yar", "d.yar", "a.yar"].map((name) => join(directory, name)),
      limits: { maxTotalBytes: 100 },
    });
    expect(perLoad.sources.map((source) => source.namespace)).toEqual(["c", "d"]);
    expect(perLoad.diagnostics).toEqual([
      expect.objectContaining({
        path: join(directory, "a.yar"),
        code: "rules-too-large",
        message: expect.stringContaining("ruleSourceLimits.maxTotalBytes"),
      }),
    ]);
  });
});

describe("includes the engines would read themselves", () => {
  it.each([
    ["after a rule on the same line", 'rule a { condition: true } include "/dev/zero"', 1, 28],
    ["split over two lines", 'rule a { condition: true }\ninclude\n"x.yar"', 2, 1],
    ["after a block comment", '/* c */ include "x.yar"', 1, 9],
    ["inside a condition", "rule a {\n  condition:\n    true and include\n}", 3, 14],
    ["followed by a block comment", 'include "x.yar" /* c */', 1, 1],
  ])("refuses an include %s", async (_, rules, line, column) => {
    const { sources, diagnostics } = await loadRuleSources({ rules });
    expect(sources).toEqual([]);
    expect(diagnostics).toEqual([
      expect.objectContaining({
        path: "<rules:inline>",
        line,
        column,
        code: "include-not-on-own-line",
        message: expect.stringContaining("move it to a line of its own"),
      }),
    ]);
  });

  it("leaves `include` in comments, strings, regular expressions and pattern names alone", async () => {
    const rules = [
      '// include "nowhere.yar"',
      "/*",
      'include "nowhere.yar"',
      "*/",
      "rule a {",
      '  meta: note = "include \\"x.yar\\""',
      '  strings: $include = "include" $re = /include "x"/ /* include "y" */',
      "  condition: $include and #include > 0 and @include[1] >= 0 and !include[1] > 0 and $re",
      "}",
    ].join("\n");
    const { sources, diagnostics } = await loadRuleSources({ rules });
    expect(diagnostics).toEqual([]);
    expect(sources[0]?.source).toBe(rules);
  });
});

describe("a scanner whose rules include a FIFO", () => {
  it("sets up, reloads and closes without blocking, and reports the FIFO", {
    timeout: 15_000,
  }, async () => {
    const directory = await directoryWith({
      "rules/main.yar": 'include "../pipe.fifo"\nrule a { condition: true }\n',
      "rules/good.yar": "rule good { condition: true }\n",
    });
    fifoAt(join(directory, "pipe.fifo"));
    const scanner = createYaraScanner({
      rulesDir: join(directory, "rules"),
      workers: 1,
      onDiagnostics: () => {},
    });
    scanners.push(scanner);
    await scanner.setup?.();
    const errors = scanner.diagnostics.filter((diagnostic) => diagnostic.severity === "error");
    expect(codes(errors)).toEqual(["include-not-regular-file"]);
    await scanner.reload();
    await scanner.reload();
    expect(scanner.ruleFileCount).toBe(1);
    await scanner.close?.();
  });
});

describe("large rule files and trees (review finding)", () => {
  it("loads a 250,000-line rule file (a spread of its lines overflowed the stack) into one source", async () => {
    const lines = Array.from({ length: 250_000 }, (_, index) => `// line ${index}`);
    lines.push("rule big { condition: true }");
    const directory = await directoryWith({ "big.yar": lines.join("\n") });
    const { sources, diagnostics } = await loadRuleSources({ rulesDir: directory });
    expect(diagnostics).toEqual([]);
    expect(sources).toHaveLength(1);
    expect(sources[0]?.source.endsWith("rule big { condition: true }")).toBe(true);
  });
});
