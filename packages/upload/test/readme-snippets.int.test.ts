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
// - ```ts blocks are transpiled (typescript's transpileModule) and run; one that uses
//   `await using` must say "TypeScript 5.2" in the prose just before it.
// - `<!-- snippet: skip (reason) -->` on the line before a block skips it; the skips are
//   registered as skipped tests with their reason, and printed.
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
const runnable = new Set(["js", "javascript", "mjs", "ts", "typescript"]);

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

/** The runnable code blocks of a README (fences at the start of a line). */
function snippetsOf(markdown: string, readme: string): Snippet[] {
  const lines = markdown.split("\n");
  const snippets: Snippet[] = [];
  let previousEnd = 0;
  for (let index = 0; index < lines.length; index++) {
    const open = /^```(\S*)\s*$/.exec(lines[index] ?? "");
    if (!open) continue;
    const close = lines.findIndex((line, at) => at > index && /^```\s*$/.test(line));
    if (close < 0) throw new Error(`${readme}:${index + 1}: a code block is never closed`);
    const language = (open[1] ?? "").toLowerCase();
    if (runnable.has(language)) {
      const skip = /^<!--\s*snippet:\s*skip\s*\((.+)\)\s*-->\s*$/.exec(lines[index - 1] ?? "");
      snippets.push({
        readme,
        line: index + 1,
        language,
        code: `${lines.slice(index + 1, close).join("\n")}\n`,
        before: lines.slice(previousEnd, index).join("\n"),
        ...(skip?.[1] ? { skip: skip[1] } : {}),
      });
    }
    previousEnd = close + 1;
    index = close;
  }
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

const fileNameComment = /^\/\/ ((?:[\w.-]+\/)*[\w.-]+\.(?:m?js|ts))\b/;
const fileOf = (snippet: Snippet) => {
  const named = fileNameComment.exec(snippet.code)?.[1];
  if (named) return named.replace(/\.ts$/, ".mjs");
  return `snippet-${snippet.line}.mjs`;
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
  if (snippet.language === "ts" || snippet.language === "typescript") {
    if (/\bawait using\b/.test(code) && !/TypeScript 5\.2/.test(snippet.before))
      throw new Error(`${titleOf(snippet)} uses \`await using\`: say "TypeScript 5.2+" before it`);
    code = ts.transpileModule(code, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext },
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
  const specifiers = [...code.matchAll(/(?:from|import)\s*\(?\s*"([^".][^"]*)"/g)].map(
    (match) => match[1] ?? "",
  );
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
const skipped = all.flatMap(({ snippets }) => snippets.filter((snippet) => snippet.skip));

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
      const runs = snippets.filter((snippet) => !snippet.skip);
      if (runs.length === 0) continue;
      const directory = scratchProject(root, runs, fixtures);
      for (const snippet of runs) {
        const file = join(directory, fileOf(snippet));
        const port = kindOf(snippet.code) === "server" ? await freePort() : undefined;
        if (port !== undefined) environment.ports.set(snippet, port);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, saved(snippet, environment, port));
      }
      projects.set(readme, directory);
    }
    console.log(
      `README blocks: ${all.flatMap((entry) => entry.snippets).length - skipped.length} run, ${skipped.length} skipped${skipped.map((snippet) => `\n  skipped ${titleOf(snippet)}: ${snippet.skip}`).join("")}`,
    );
  }, 120_000);
  afterAll(async () => {
    await clamd?.[Symbol.asyncDispose]();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("finds the blocks of every README", () => {
    expect(all.map((entry) => entry.readme)).toContain("packages/upload/README.md");
    expect(all.flatMap((entry) => entry.snippets).length).toBeGreaterThan(20);
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
  });
});
