// Every JavaScript and TypeScript code block of every README in this repository (the root's,
// packages/*, apps/*) runs as written on this Node, as a user would run it: each README's
// blocks are saved into a scratch project of its own outside the workspace, whose node_modules
// links the @engine/* packages (their builds: run `pnpm build` first) and the third-party
// packages the blocks import (found in the workspace: this package's devDependencies carry the
// web frameworks), next to the files the examples name (`upload.bin`, EICAR; `package.json`;
// `rules/`, the bundled YARA rules; `bundle.tar.gz`, EICAR in a tar in a gzip). Two things of
// the reader's machine are replaced: clamd's addresses (the Debian socket
// `/run/clamav/clamd.ctl`, and `10.0.0.x:3310` in a pool) by a managed clamd's, and a
// server's port 3000 by a free one.
//
// - A block whose first line is a comment naming a file (`// word-scanner.js: ...`) is saved
//   under that name, so a later block can import it; others as `snippet-<line>.mjs`.
// - A block that starts a server (`.listen(`, `serve({`) is started, sent an upload of EICAR
//   (refused 422) and of a benign file (200), and stopped.
// - A block that exports a Next.js route handler (`export const POST`) is imported and called
//   with the same two uploads.
// - A block that imports `@engine/core/testing` is a vitest test file: vitest runs it.
// - Any other block runs with node and must exit 0 (so it must close what it opens); a
//   `console.log(...)` line ending in a comment of string literals (`// "malicious" "EICAR"`)
//   must print them, space-separated, at the start of a line.
// - Fences are read as CommonMark reads them (info strings, ~~~, blocks indented in list
//   items). Every block in a JavaScript or TypeScript language runs: js, javascript, mjs, node
//   (ES modules), cjs (CommonJS), ts, typescript, mts, cts (transpiled only, with typescript's
//   transpileModule: types are not checked; one that uses `await using` must say
//   "TypeScript 5.2" in the prose just before it). Any other such language (jsx, tsx, es6...)
//   fails its test, naming README:line, unless the block is skip-marked.
// - `<!-- snippet: skip (reason) -->` on the line before a block skips it; the skips are
//   registered as skipped tests with their reason, and printed. A marker before no such block
//   is an error.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import { eicarBytes } from "@engine/core";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const repository = join(import.meta.dirname, "../../..");
/** How the test runs a block, by its language (the info string's first word). */
interface Runner {
  typescript: boolean;
  commonjs: boolean;
}
const esm = { typescript: false, commonjs: false };
const runners: Record<string, Runner> = {
  js: esm,
  javascript: esm,
  mjs: esm,
  node: esm,
  cjs: { typescript: false, commonjs: true },
  ts: { typescript: true, commonjs: false },
  typescript: { typescript: true, commonjs: false },
  mts: { typescript: true, commonjs: false },
  cts: { typescript: true, commonjs: true },
};
/**
 * JavaScript or TypeScript by its language (jsx, tsx, es6, javascriptreact, js{1-3}...): such a
 * block is run, or skip-marked, or the test fails naming it.
 */
const jsLike = /^(?:(?:java|type|ecma)script\w*|[cm]?[jt]sx?\b|node(?:js)?\b|es\d+\b)/;
const runnerOf = (snippet: Snippet): Runner | undefined =>
  Object.hasOwn(runners, snippet.language) ? runners[snippet.language] : undefined;

interface Snippet {
  /** The README, relative to the repository. */
  readme: string;
  /** The line of the opening fence (1-based). */
  line: number;
  language: string;
  code: string;
  /** The prose between the previous block and this one. */
  before: string;
  skip?: string;
}

const skipMarker = /^ *<!--\s*snippet:\s*skip\s*\((.+)\)\s*-->\s*$/;
const listMarker = /^( *)([-+*]|\d{1,9}[.)])( {1,4})(?=\S)/;
/** Lines that end a paragraph, so a list item less indented than them is over. */
const blockStart = /^ {0,3}(?:#{1,6}(?: |$)|>|`{3}|~{3}|<|[-+*] |\d{1,9}[.)] )/;

/**
 * The JavaScript and TypeScript code blocks of a README, its fences read as CommonMark does:
 * an opening fence is 3 or more backticks or tildes indented at most 3 spaces beyond the list
 * item it is in (if any), then an info string whose first word is the language (a backtick
 * fence's info string has no backtick); the block ends at a fence of the same character, at
 * least as long, with nothing after it; its lines lose the opening fence's indentation.
 */
function snippetsOf(markdown: string, readme: string): Snippet[] {
  const lines = markdown.split("\n").map((line) => line.replace(/\r$/, ""));
  const snippets: Snippet[] = [];
  /** The content columns of the list items the current line is in, innermost last. */
  const items: number[] = [];
  const markers = new Map<number, string>();
  let previousEnd = 0;
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index] ?? "";
    if (line.trim() === "") continue;
    const indentation = line.length - line.trimStart().length;
    const afterBlank = (lines[index - 1] ?? "").trim() === "";
    while (
      items.length > 0 &&
      indentation < (items.at(-1) ?? 0) &&
      (afterBlank || blockStart.test(line))
    )
      items.pop();
    const item = listMarker.exec(line);
    if (item) {
      const column = (item[0] ?? "").length;
      while (items.length > 0 && (items.at(-1) ?? 0) > indentation) items.pop();
      items.push(column);
      line = " ".repeat(column) + line.slice(column);
    }
    const marker = skipMarker.exec(line);
    if (marker?.[1]) markers.set(index, marker[1]);
    const open = /^( *)(`{3,}|~{3,})(.*)$/.exec(line);
    if (!open || (open[2]?.startsWith("`") && open[3]?.includes("`"))) continue;
    const container = items.at(-1) ?? 0;
    const fenceIndent = open[1]?.length ?? 0;
    const fence = open[2] ?? "";
    const language = (open[3] ?? "").trim().split(/\s+/)[0]?.toLowerCase() ?? "";
    if (fenceIndent > container + 3) {
      if (jsLike.test(language))
        throw new Error(
          `${readme}:${index + 1}: a \`\`\`${language} fence indented ${fenceIndent} spaces is indented code, not a code block: indent it at most 3 spaces (beyond its list item's text)`,
        );
      continue;
    }
    const closing = new RegExp(`^ *${fence[0] === "`" ? "`" : "~"}{${fence.length},} *$`);
    let close = index + 1;
    for (; close < lines.length; close++) {
      const inside = lines[close] ?? "";
      if (inside.trim() === "") continue;
      const depth = inside.length - inside.trimStart().length;
      if (depth < container)
        throw new Error(
          `${readme}:${index + 1}: a code block whose list item ends (line ${close + 1}) before its closing fence`,
        );
      if (depth <= container + 3 && closing.test(inside)) break;
    }
    if (close >= lines.length)
      throw new Error(`${readme}:${index + 1}: a code block is never closed`);
    if (jsLike.test(language)) {
      const skip = markers.get(index - 1);
      markers.delete(index - 1);
      const strip = new RegExp(`^ {0,${fenceIndent}}`);
      snippets.push({
        readme,
        line: index + 1,
        language,
        code: `${lines
          .slice(index + 1, close)
          .map((inside) => inside.replace(strip, ""))
          .join("\n")}\n`,
        before: lines.slice(previousEnd, index).join("\n"),
        ...(skip ? { skip } : {}),
      });
    }
    previousEnd = close + 1;
    index = close;
  }
  for (const [index] of markers)
    throw new Error(
      `${readme}:${index + 1}: a skip marker not on the line just before a JavaScript or TypeScript block`,
    );
  return snippets;
}

function readmes(): string[] {
  const inFolders = ["packages", "apps"].flatMap((folder) =>
    readdirSync(join(repository, folder))
      .map((name) => join(folder, name, "README.md"))
      .filter((path) => existsSync(join(repository, path))),
  );
  return ["README.md", ...inFolders.sort()];
}

const fileNameComment = /^\/\/ ((?:[\w.-]+\/)*[\w.-]+\.[cm]?[jt]s)\b/;
const fileOf = (snippet: Snippet) => {
  const named = fileNameComment.exec(snippet.code)?.[1];
  if (named) return named.replace(/\.m?ts$/, ".mjs").replace(/\.cts$/, ".cjs");
  return `snippet-${snippet.line}.${runnerOf(snippet)?.commonjs ? "cjs" : "mjs"}`;
};
const titleOf = (snippet: Snippet) => `${snippet.readme}:${snippet.line} (${fileOf(snippet)})`;
const kindOf = (code: string) =>
  /from "(@engine\/core\/testing|vitest)"/.test(code)
    ? "vitest"
    : /\.listen\(|\bserve\(\{/.test(code)
      ? "server"
      : /export (const|async function|function) POST\b/.test(code)
        ? "route"
        : "script";

/** `console.log(...); // "a" "b"` (optionally followed by a remark in parentheses) -> "a b". */
function expectedOutputs(code: string): string[] {
  const literal = /"(?:[^"\\]|\\.)*"/g;
  return code.split("\n").flatMap((line) => {
    const comment = /console\.log\(.*\/\/\s*((?:"(?:[^"\\]|\\.)*"\s*)+)(?:\(.*\))?\s*$/.exec(line);
    if (!comment?.[1]) return [];
    return [(comment[1].match(literal) ?? []).map((text) => JSON.parse(text)).join(" ")];
  });
}

interface Environment {
  socket: string;
  /** The managed clamd's TCP address, `host:port`. */
  tcp: string;
  vitest: string;
  /** The free port each server block listens on instead of 3000. */
  ports: Map<Snippet, number>;
}

/** The code as saved: the reader's clamd socket replaced, TypeScript transpiled. */
function saved(snippet: Snippet, environment: Environment, port?: number): string {
  let code = snippet.code
    .replaceAll("/run/clamav/clamd.ctl", environment.socket)
    .replace(/\b10\.0\.0\.\d+:3310\b/g, environment.tcp);
  if (port !== undefined) code = code.replace(/\b3000\b/g, String(port));
  const runner = runnerOf(snippet);
  if (!runner) throw new Error(`${titleOf(snippet)}: not a language this test runs`);
  if (runner.typescript) {
    if (/\bawait using\b/.test(code) && !/TypeScript 5\.2/.test(snippet.before))
      throw new Error(`${titleOf(snippet)} uses \`await using\`: say "TypeScript 5.2+" before it`);
    code = ts.transpileModule(code, {
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: runner.commonjs ? ts.ModuleKind.CommonJS : ts.ModuleKind.ESNext,
      },
    }).outputText;
  }
  return code;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

/** Node, without the environment vitest gives its own workers (a nested vitest must not see it). */
function node(args: string[], cwd: string): ChildProcess {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^(VITEST|NODE_OPTIONS$|TEST$)/.test(name)),
  );
  return spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
}

async function finished(child: ChildProcess, timeoutMs: number): Promise<Run> {
  let output = "";
  child.stdout?.on("data", (chunk) => (output += chunk));
  child.stderr?.on("data", (chunk) => (output += chunk));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  clearTimeout(timer);
  return { code, signal, output };
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

function uploadForm(field: string, name: string, content: Uint8Array): FormData {
  const form = new FormData();
  form.append(field, new Blob([new Uint8Array(content)]), name);
  return form;
}
const uploads = {
  eicar: () => uploadForm("files", "eicar.com.txt", eicarBytes()),
  benign: () => uploadForm("files", "report.txt", Buffer.from("quarterly report\n".repeat(40))),
};

/** A server block: started, sent EICAR and a benign file, stopped. */
async function checkServer(file: string, directory: string, port: number): Promise<string> {
  const child = node([file], directory);
  const run = finished(child, 90_000);
  const url = `http://127.0.0.1:${port}/upload`;
  try {
    const started = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`exited before listening:\n${(await run).output}`);
      if (Date.now() > started) throw new Error("not listening after 30 s");
      const answered = await fetch(url).then(
        () => true,
        () => false,
      );
      if (answered) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const eicar = await fetch(url, { method: "POST", body: uploads.eicar() });
    const benign = await fetch(url, { method: "POST", body: uploads.benign() });
    return `${eicar.status} ${(await eicar.text()).slice(0, 200)}\n${benign.status} ${await benign.text()}`;
  } finally {
    child.kill("SIGTERM");
    await run;
  }
}

/** Runs one saved block; throws with its output when it fails. */
async function check(snippet: Snippet, directory: string, environment: Environment): Promise<void> {
  if (!runnerOf(snippet))
    throw new Error(
      `${snippet.readme}:${snippet.line}: a \`\`\`${snippet.language} block, which this test cannot run: write it as ${Object.keys(runners).join(", ")}, or put <!-- snippet: skip (reason) --> on the line before it`,
    );
  const file = fileOf(snippet);
  const kind = kindOf(snippet.code);
  if (kind === "server") {
    const port = environment.ports.get(snippet);
    if (port === undefined) throw new Error(`${titleOf(snippet)}: no port`);
    const answers = await checkServer(file, directory, port);
    expect(answers, `${titleOf(snippet)}: EICAR refused 422, a benign file 200`).toMatch(
      /^422 [^\n]*"malicious"[^\n]*\n200 /,
    );
    return;
  }
  let run: Run;
  if (kind === "vitest") {
    run = await finished(
      node([environment.vitest, "run", file, "--root", "."], directory),
      120_000,
    );
  } else if (kind === "route") {
    const driver = `driver-${snippet.line}.mjs`;
    writeFileSync(
      join(directory, driver),
      `import { POST } from "./${file}";
const post = async (form) => (await POST(new Request("http://localhost/api/upload", { method: "POST", body: form }))).status;
const form = (name, content) => { const data = new FormData(); data.append("files", new Blob([content]), name); return data; };
console.log("route answers", await post(form("eicar.com.txt", ${JSON.stringify(eicarBytes().toString("latin1"))})), await post(form("report.txt", "quarterly report\\n")));
process.exit(0); // the route's scanner keeps its clamd connections for the next request
`,
    );
    run = await finished(node([driver], directory), 60_000);
    expect(run.output, titleOf(snippet)).toContain("route answers 422 200");
  } else {
    run = await finished(node([file], directory), 60_000);
  }
  if (run.code !== 0)
    throw new Error(
      `${titleOf(snippet)} exited with ${run.code ?? run.signal}${run.signal === "SIGKILL" ? " (timed out: does it close what it opens?)" : ""}:\n${run.output}`,
    );
  const printed = run.output.split("\n").map((line) => line.trim());
  for (const expected of expectedOutputs(snippet.code))
    expect(
      printed.some((line) => line === expected || line.startsWith(`${expected} `)),
      `${titleOf(snippet)} should print "${expected}"; it printed:\n${run.output}`,
    ).toBe(true);
}

/** Where a package the blocks import is installed in the workspace. */
function packageDirectory(name: string): string {
  for (const folder of ["packages", "apps"])
    for (const entry of readdirSync(join(repository, folder))) {
      const manifest = join(repository, folder, entry, "package.json");
      if (existsSync(manifest) && JSON.parse(readFileSync(manifest, "utf8")).name === name)
        return join(repository, folder, entry);
    }
  for (const folder of ["packages/upload", "apps/microengine", "."]) {
    const installed = join(repository, folder, "node_modules", name);
    if (existsSync(installed)) return realpathSync(installed);
  }
  throw new Error(`a README imports ${name}, which is installed nowhere in the workspace`);
}

function importedPackages(code: string): string[] {
  const specifiers = [
    ...code.matchAll(/(?:from|import|require)\s*\(?\s*["']([^"'.][^"']*)["']/g),
  ].map((match) => match[1] ?? "");
  return specifiers
    .filter((specifier) => !specifier.startsWith("node:"))
    .map((specifier) =>
      specifier
        .split("/")
        .slice(0, specifier.startsWith("@") ? 2 : 1)
        .join("/"),
    );
}

/** A project for one README's blocks: its node_modules links, the files the examples name. */
function scratchProject(root: string, snippets: Snippet[], fixtures: string): string {
  const directory = mkdtempSync(join(root, "readme-"));
  cpSync(fixtures, directory, { recursive: true });
  for (const name of new Set(snippets.flatMap((snippet) => importedPackages(snippet.code)))) {
    const link = join(directory, "node_modules", name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(packageDirectory(name), link, "dir");
  }
  return directory;
}

function fixturesIn(root: string): string {
  const fixtures = join(root, "fixtures");
  mkdirSync(join(fixtures, "rules"), { recursive: true });
  writeFileSync(
    join(fixtures, "package.json"),
    `${JSON.stringify({ name: "readme-snippets", private: true, type: "module" }, null, 2)}\n`,
  );
  writeFileSync(join(fixtures, "upload.bin"), eicarBytes());
  cpSync(join(repository, "packages/yara/rules"), join(fixtures, "rules"), { recursive: true });
  const staging = join(root, "staging");
  mkdirSync(staging);
  writeFileSync(join(staging, "eicar.com"), eicarBytes());
  execFileSync("tar", ["-czf", join(fixtures, "bundle.tar.gz"), "-C", staging, "eicar.com"]);
  return fixtures;
}

const all = readmes().map((readme) => ({
  readme,
  snippets: snippetsOf(readFileSync(join(repository, readme), "utf8"), readme),
}));
const found = all.flatMap(({ snippets }) => snippets);
const skipped = found.filter((snippet) => snippet.skip);
const runs = found.filter((snippet) => !snippet.skip && runnerOf(snippet));
const unrunnable = found.filter((snippet) => !snippet.skip && !runnerOf(snippet));

describe("README code blocks run as written", () => {
  let clamd: ManagedClamd | undefined;
  let root: string;
  let environment: Environment;
  const projects = new Map<string, string>();
  beforeAll(async () => {
    clamd = await startManagedClamd();
    const options = clamd.clientOptions("socket");
    const tcp = clamd.clientOptions("tcp");
    if (!("socket" in options) || !("port" in tcp)) throw new Error("the managed clamd's address");
    const vitestPackage = createRequire(import.meta.url).resolve("vitest/package.json");
    environment = {
      socket: options.socket,
      tcp: `${tcp.host}:${tcp.port}`,
      vitest: join(dirname(vitestPackage), "vitest.mjs"),
      ports: new Map(),
    };
    root = mkdtempSync(join(tmpdir(), "engine-readme-snippets-"));
    const fixtures = fixturesIn(root);
    for (const { readme, snippets } of all) {
      const ran = snippets.filter((snippet) => runs.includes(snippet));
      if (ran.length === 0) continue;
      const directory = scratchProject(root, ran, fixtures);
      for (const snippet of ran) {
        const file = join(directory, fileOf(snippet));
        const port = kindOf(snippet.code) === "server" ? await freePort() : undefined;
        if (port !== undefined) environment.ports.set(snippet, port);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, saved(snippet, environment, port));
      }
      projects.set(readme, directory);
    }
    console.log(
      `README blocks: ${found.length} JavaScript/TypeScript found, ${runs.length} run, ${skipped.length} skipped, ${unrunnable.length} not runnable (failing)${skipped.map((snippet) => `\n  skipped ${titleOf(snippet)}: ${snippet.skip}`).join("")}${unrunnable.map((snippet) => `\n  not runnable ${snippet.readme}:${snippet.line}: \`\`\`${snippet.language}`).join("")}`,
    );
  }, 120_000);
  afterAll(async () => {
    await clamd?.[Symbol.asyncDispose]();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("finds the blocks of every README", () => {
    expect(all.map((entry) => entry.readme)).toContain("packages/upload/README.md");
    expect(found.length).toBeGreaterThan(20);
  });

  for (const { readme, snippets } of all)
    for (const snippet of snippets) {
      const title = `${titleOf(snippet)}: ${kindOf(snippet.code)}`;
      if (snippet.skip) it.skip(`${title} (skipped: ${snippet.skip})`, () => {});
      else
        it(title, async () => {
          const directory = projects.get(readme);
          if (!directory) throw new Error(`no project for ${readme}`);
          await check(snippet, directory, environment);
        }, 150_000);
    }

  describe("the check itself fails a broken block", () => {
    const broken = (code: string, name: string) =>
      snippetsOf(`# t\n\n\`\`\`js\n// ${name}\n${code}\n\`\`\`\n`, "BROKEN.md")[0] as Snippet;
    const runBroken = async (snippet: Snippet) => {
      const directory = projects.get("packages/core/README.md") as string;
      writeFileSync(join(directory, fileOf(snippet)), saved(snippet, environment));
      return check(snippet, directory, environment);
    };

    it("a syntax error", async () => {
      await expect(runBroken(broken("const x = ;", "broken-syntax.mjs"))).rejects.toThrow(
        /broken-syntax\.mjs.*exited with 1[\s\S]*SyntaxError/,
      );
    });

    it("`await using` in JavaScript on Node 20", async () => {
      const code =
        'import { createEicarScanner } from "@engine/core";\nawait using s = createEicarScanner();';
      const run = runBroken(broken(code, "broken-using.mjs"));
      if (Number(process.versions.node.split(".")[0]) < 24)
        await expect(run).rejects.toThrow(/SyntaxError/);
      else await run;
    });

    it("a printed value that contradicts its comment", async () => {
      const code = 'console.log("benign"); // "malicious"';
      await expect(runBroken(broken(code, "broken-output.mjs"))).rejects.toThrow(
        /should print "malicious"/,
      );
    });

    it("a thrown error (an assertion)", async () => {
      const code = 'import assert from "node:assert/strict";\nassert.equal(1 + 1, 3);';
      await expect(runBroken(broken(code, "broken-assert.mjs"))).rejects.toThrow(
        /exited with 1[\s\S]*AssertionError/,
      );
    });

    it("a ```ts block with `await using` runs transpiled only where the prose says TypeScript 5.2+", async () => {
      const code = [
        "// typescript-using.ts",
        'import { createEicarScanner, eicarBytes, artifactFromBytes } from "@engine/core";',
        "await using scanner = createEicarScanner();",
        "const verdict: string = (await scanner.scan(artifactFromBytes(eicarBytes()))).verdict;",
        'console.log(verdict); // "malicious"',
      ].join("\n");
      const block = (prose: string) =>
        snippetsOf(`${prose}\n\n\`\`\`ts\n${code}\n\`\`\`\n`, "TS.md")[0] as Snippet;
      await expect(runBroken(block("In TypeScript:"))).rejects.toThrow(
        /uses `await using`: say "TypeScript 5\.2\+" before it/,
      );
      await runBroken(block("In TypeScript 5.2+:"));
    });

    it("reads a skip marker and its reason", () => {
      const markdown = "<!-- snippet: skip (needs a GPU) -->\n```js\nthrow 1;\n```\n";
      expect(snippetsOf(markdown, "X.md")[0]?.skip).toBe("needs a GPU");
      expect(expectedOutputs('console.log(a, b); // "x" "y z" (a remark)')).toEqual(["x y z"]);
      expect(fileOf(broken("", "app/api/upload/route.js: the route"))).toBe(
        "app/api/upload/route.js",
      );
    });

    it("reports a ```jsx block it cannot run, naming README:line, unless it is skip-marked", async () => {
      const markdown = "# X\n\n```jsx\nconst a = <App />;\n```\n";
      const [block] = snippetsOf(markdown, "X.md");
      expect(block?.language).toBe("jsx");
      const directory = projects.get("packages/core/README.md") as string;
      await expect(check(block as Snippet, directory, environment)).rejects.toThrow(
        /^X\.md:3: a ```jsx block, which this test cannot run/,
      );
      const marked = "<!-- snippet: skip (React) -->\n```tsx\nconst a = <App />;\n```\n";
      expect(snippetsOf(marked, "X.md")[0]?.skip).toBe("React");
    });

    it("runs a ```cjs block as CommonJS", async () => {
      const code =
        '// commonjs.cjs\nconst { eicarBytes } = require("@engine/core");\nconsole.log(eicarBytes().length > 0 ? "eicar" : "none"); // "eicar"';
      const [block] = snippetsOf(`\`\`\`cjs\n${code}\n\`\`\`\n`, "CJS.md");
      expect(fileOf(block as Snippet)).toBe("commonjs.cjs");
      await runBroken(block as Snippet);
    });
  });

  describe("the fences are read as CommonMark reads them", () => {
    const blocks = (markdown: string) =>
      snippetsOf(markdown, "F.md").map(({ line, language, code }) => ({ line, language, code }));

    it("a fence with an info string after the language", () => {
      expect(blocks('```js title="a.js" {1}\nrun();\n```\n')).toEqual([
        { line: 1, language: "js", code: "run();\n" },
      ]);
    });

    it("an indented fence in a list item, its lines less its indentation", () => {
      const markdown =
        "1. Install:\n\n   ```ts\n   const a = 1;\n     nested();\n   ```\n\n2. Then\n";
      expect(blocks(markdown)).toEqual([
        { line: 3, language: "ts", code: "const a = 1;\n  nested();\n" },
      ]);
      expect(blocks("- ```mjs\n  go();\n  ```\n")).toEqual([
        { line: 1, language: "mjs", code: "go();\n" },
      ]);
      expect(() => blocks("Text\n\n    ```js\n    code\n    ```\n")).toThrow(
        /F\.md:3: a ```js fence indented 4 spaces is indented code/,
      );
    });

    it("~~~ fences, and a fence closed only by its own character, at least as long", () => {
      const markdown = "~~~typescript\nconst a = 1;\n```\n~~\n~~~~\n\n````node\n```js\n````\n";
      expect(blocks(markdown)).toEqual([
        { line: 1, language: "typescript", code: "const a = 1;\n```\n~~\n" },
        { line: 7, language: "node", code: "```js\n" },
      ]);
    });

    it("every language of JavaScript or TypeScript, and nothing else", () => {
      const languages =
        "js javascript mjs cjs jsx ts typescript mts cts tsx node JS es6 sh json tsv";
      const markdown = languages
        .split(" ")
        .map((language) => `\`\`\`${language}\nx\n\`\`\`\n`)
        .join("\n");
      expect(blocks(markdown).map((block) => block.language)).toEqual(
        "js javascript mjs cjs jsx ts typescript mts cts tsx node js es6".split(" "),
      );
    });

    it("a missed fence does not swallow the next block: three blocks, three found", () => {
      const markdown = [
        '```js title="one.js"',
        "one();",
        "```",
        "",
        "- a list item:",
        "",
        "  ```ts",
        "  two();",
        "  ```",
        "",
        "```mjs",
        "three();",
        "```",
      ].join("\n");
      expect(blocks(markdown)).toEqual([
        { line: 1, language: "js", code: "one();\n" },
        { line: 7, language: "ts", code: "two();\n" },
        { line: 11, language: "mjs", code: "three();\n" },
      ]);
    });

    it("an unclosed block, and a skip marker before no block, are errors", () => {
      expect(() => blocks("```js\nrun();\n")).toThrow(/F\.md:1: a code block is never closed/);
      expect(() => blocks("- item\n\n  ```js\n  run();\nout of the item\n")).toThrow(
        /F\.md:3: a code block whose list item ends \(line 5\)/,
      );
      expect(() => blocks("<!-- snippet: skip (why) -->\n\n```js\nrun();\n```\n")).toThrow(
        /F\.md:1: a skip marker not on the line just before/,
      );
    });
  });
});
