import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEngine, startEngine } from "../../../src/commands/serve-engine.js";
import { loadConfig } from "../../../src/config/config.js";
import { signBody } from "../../../src/protocol/webhook-signature.js";
import { microengine } from "../../harness/cli.js";
import { type Collector, startCollector } from "../../harness/engine.js";

// Third-party backends: modules in a temporary directory, outside this repository (so they
// cannot import @engine/*: plain objects), named in ENGINE_BACKENDS and used by scan, check
// and serve.
const wordScanner = `
export function createScanner() {
  return {
    name: "word",
    async scan(artifact, { signal }) {
      const text = Buffer.from(await artifact.bytes({ signal })).toString("latin1");
      const found = text.includes("EVIL-WORD") || text.includes("EICAR-STANDARD-ANTIVIRUS-TEST-FILE");
      return {
        verdict: found ? "malicious" : "benign",
        confidence: found ? 0.9 : 1,
        metadata: { malware_family: found ? "Word.Evil" : "" },
      };
    },
    async [Symbol.asyncDispose]() {},
  };
}
`;
const modules: Record<string, string> = {
  "word-scanner.mjs": wordScanner,
  "throwing-scanner.mjs": `export function createScanner() {
    return { name: "thrower", async scan() { throw new Error("backend exploded at /secret/path"); } };
  }`,
  "sloppy-scanner.mjs": `export function createScanner() {
    return { name: "sloppy", async scan() { return { verdict: "benign", confidence: 1, metadata: {} }; } };
  }`,
  // Declares what it can do: no EICAR detection, and a way to be pointed at a backend that is down.
  "capable-scanner.mjs": `${wordScanner.replace('name: "word"', 'name: "capable"').replace(' || text.includes("EICAR-STANDARD-ANTIVIRUS-TEST-FILE")', "")}
export const conformance = {
  capabilities: {
    detectsEicar: false,
    createUnreachableScanner: () => ({ name: "capable", async scan() { throw new Error("connect ECONNREFUSED"); } }),
  },
};`,
  "hostile-conformance.mjs": `${wordScanner.replace('name: "word"', 'name: "hostile"')}
export const conformance = { get capabilities() { throw new Error("boom-get"); } };`,
  "hostile-scanner.mjs": `export function createScanner() {
    return { get name() { throw Object.create(null); }, async scan() {} };
  }`,
  "no-factory.mjs": "export const scanner = {};",
  "not-a-scanner.mjs": "export function createScanner() { return { name: 42 }; }",
  "syntax-error.mjs": "export function createScanner( {",
  "named-yara.mjs": `export function createScanner() {
    return { name: "yara", async scan() { return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } }; } };
  }`,
  "node_modules/acme-scanner/package.json": JSON.stringify({
    name: "acme-scanner",
    type: "module",
    exports: "./index.js",
  }),
  "node_modules/acme-scanner/index.js": wordScanner.replace('name: "word"', 'name: "acme"'),
};

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-plugins-"));
  await mkdir(join(directory, "node_modules", "acme-scanner"), { recursive: true });
  for (const [name, text] of Object.entries(modules)) await writeFile(join(directory, name), text);
  await writeFile(join(directory, "evil.txt"), "hello EVIL-WORD\n");
  await writeFile(join(directory, "clean.txt"), "hello\n");
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("a third-party backend module in scan and check", () => {
  it("scan: a path entry is loaded and its detection is listed with its name", async () => {
    const { code, stdout, stderr } = await microengine(
      ["scan", "--backends", "eicar,./word-scanner.mjs", "evil.txt", "clean.txt"],
      {},
      { cwd: directory },
    );
    expect(stderr).toMatch(/word +on +third-party module \.\/word-scanner\.mjs/);
    expect(stdout).toContain(`MALICIOUS ${join(directory, "evil.txt")}: Word.Evil (word)`);
    expect(stdout).toMatch(/benign +1\n/);
    expect(code).toBe(1);
  });

  it("scan: npm:<package> resolves from the working directory", async () => {
    const { code, stdout } = await microengine(
      ["scan", "--backends", "npm:acme-scanner", "evil.txt"],
      {},
      { cwd: directory },
    );
    expect(stdout).toContain(`MALICIOUS ${join(directory, "evil.txt")}: Word.Evil (acme)`);
    expect(code).toBe(1);
  });

  it("scan: a backend that throws fails closed (unknown, never the other backend's benign), with a public reason", async () => {
    const { code, stdout } = await microengine(
      ["scan", "--backends", "eicar,./throwing-scanner.mjs", "clean.txt"],
      {},
      { cwd: directory },
    );
    expect(stdout).toContain(
      `UNKNOWN ${join(directory, "clean.txt")}: thrower: ENGINE_ERROR (internal error)`,
    );
    expect(stdout).not.toContain("/secret/path");
    expect(code).toBe(2);
  });

  it("check: runs the conformance checks that apply and passes a conformant module", async () => {
    const { code, stdout } = await microengine(
      ["check", "--backends", "eicar,./word-scanner.mjs"],
      {},
      { cwd: directory },
    );
    expect(stdout).toMatch(/PASS word conformance eicar: /);
    expect(stdout).toMatch(/PASS word conformance abort: /);
    expect(stdout).toMatch(/PASS word conformance deadline: /);
    expect(stdout).toMatch(
      /SKIP word conformance unreachable: .*\(the scanner declares no createUnreachableScanner\)/,
    );
    expect(stdout).toMatch(/SKIP word conformance large: .*\(group large switched off\)/);
    expect(stdout).not.toMatch(/FAIL/);
    // eicar has test signatures only, but a module counts as real coverage: healthy.
    expect(stdout).toMatch(/engine healthy/);
    expect(code).toBe(0);
  });

  it("check: a module's declared capabilities decide what runs (no EICAR group; unreachable runs)", async () => {
    const { code, stdout } = await microengine(
      ["check", "--backends", "eicar,./capable-scanner.mjs"],
      {},
      { cwd: directory },
    );
    expect(stdout).toMatch(
      /SKIP capable conformance eicar: .*\(the scanner does not declare detectsEicar\)/,
    );
    expect(stdout).toMatch(/PASS capable conformance unreachable: /);
    expect(stdout).toMatch(/PASS capable conformance schema: /);
    expect(stdout).not.toMatch(/FAIL/);
    expect(code).toBe(0);
  });

  it("check: the core README's third-party scanner (under 20 lines) passes as written", async () => {
    const readme = await readFile(
      join(import.meta.dirname, "../../../../../packages/core/README.md"),
      "utf8",
    );
    const section = readme.slice(readme.indexOf("## A third-party backend for the engine"));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1] ?? "";
    expect(code.trim().split("\n").length).toBeLessThan(20);
    await writeFile(join(directory, "readme-scanner.mjs"), code);
    const checked = await microengine(
      ["check", "--backends", "eicar,./readme-scanner.mjs"],
      {},
      { cwd: directory },
    );
    expect(checked.stdout).toMatch(/PASS word conformance eicar: /);
    expect(checked.stdout).not.toMatch(/FAIL/);
    expect(checked.code).toBe(0);
  });

  it("check: fails a module whose results break the schema", async () => {
    const { code, stdout } = await microengine(
      ["check", "--backends", "eicar,./sloppy-scanner.mjs"],
      {},
      { cwd: directory },
    );
    expect(stdout).toMatch(/FAIL sloppy conformance schema: .*malware_family/);
    expect(stdout).toMatch(/engine NOT healthy/);
    expect(code).toBe(1);
  });

  it.each([
    ["./missing.mjs", /ENGINE_BACKENDS entry "\.\/missing\.mjs": cannot be imported/],
    [
      "./no-factory.mjs",
      /ENGINE_BACKENDS entry "\.\/no-factory\.mjs": exports no createScanner\(\)/,
    ],
    [
      "./not-a-scanner.mjs",
      /ENGINE_BACKENDS entry "\.\/not-a-scanner\.mjs": createScanner\(\) did not return a scanner/,
    ],
    ["./syntax-error.mjs", /ENGINE_BACKENDS entry "\.\/syntax-error\.mjs": cannot be imported/],
    [
      "./hostile-conformance.mjs",
      /ENGINE_BACKENDS entry "\.\/hostile-conformance\.mjs": reading its conformance export threw: boom-get/,
    ],
    [
      "./hostile-scanner.mjs",
      /ENGINE_BACKENDS entry "\.\/hostile-scanner\.mjs": reading what createScanner\(\) returned threw: an error that cannot be printed/,
    ],
    [
      "./named-yara.mjs",
      /ENGINE_BACKENDS entry "\.\/named-yara\.mjs": its scanner is named "yara"/,
    ],
    [
      "npm:not-installed-scanner",
      /ENGINE_BACKENDS entry "npm:not-installed-scanner": cannot be imported/,
    ],
    ["npm:../escape", /ENGINE_BACKENDS: "npm:\.\.\/escape" is none of/],
  ])("a broken entry %s is a start-up error naming it (exit 2)", async (entry, message) => {
    const { code, stderr } = await microengine(
      ["scan", "--backends", `eicar,${entry}`, "clean.txt"],
      {},
      { cwd: directory },
    );
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
  });
});

describe("a third-party backend module in serve", () => {
  let engine: RunningEngine;
  let collector: Collector;
  let artifacts: Server;
  beforeAll(async () => {
    artifacts = createHttpServer((_request, response) => response.end("hello EVIL-WORD\n"));
    await new Promise<void>((resolve) => artifacts.listen(0, "127.0.0.1", resolve));
    collector = await startCollector();
    engine = await startEngine(
      loadConfig({
        WEBHOOK_SECRET: "plugins",
        PORT: "0",
        ENGINE_BACKENDS: `eicar,${join(directory, "word-scanner.mjs")}`,
        ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
        ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
      }),
      pino({ level: "silent" }),
    );
  });
  afterAll(async () => {
    await engine?.close();
    await collector?.close();
    artifacts?.closeAllConnections();
    await new Promise((resolve) => artifacts?.close(resolve));
  });

  it("answers with its verdict in the provenance, and shows it in /readyz and /metrics", async () => {
    const port = (artifacts.address() as { port: number }).port;
    const body = JSON.stringify({
      id: 4242,
      artifact_type: "file",
      artifact_uri: `http://127.0.0.1:${port}/evil.txt`,
      response_url: `${collector.url}/answers/4242`,
      expiration: new Date(Date.now() + 20_000).toISOString(),
    });
    const response = await fetch(`${engine.url}/`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-polyswarm-event": "bounty",
        "x-polyswarm-signature": signBody("plugins", Buffer.from(body)),
      },
      body,
    });
    expect(response.status).toBe(202);
    const deadline = Date.now() + 15_000;
    while (collector.answersFor(4242).length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 25));
    const answer = JSON.parse(collector.answersFor(4242)[0]?.body ?? "{}");
    expect(answer.verdict).toBe("malicious");
    expect(
      answer.metadata.backends.map(
        (backend: { name: string; verdict: string }) => `${backend.name}=${backend.verdict}`,
      ),
    ).toEqual(["eicar=benign", "word=malicious"]);
    const readiness = (await (await fetch(`${engine.url}/readyz`)).json()) as {
      checks: Record<string, unknown>;
    };
    expect(readiness.checks.word).toEqual({ ok: true, kind: "module", probe: "none" });
    const metrics = await (await fetch(`${engine.url}/metrics`)).text();
    expect(metrics).toMatch(/engine_scans_total\{backend="word",verdict="malicious"\} 1/);
  });
});
