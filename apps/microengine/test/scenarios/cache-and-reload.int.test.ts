import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { cliPath } from "../harness/cli.js";
import {
  answerOf,
  bountyBody,
  type Collector,
  secret,
  signed,
  startCollector,
} from "../harness/engine.js";

// `microengine serve` as operators run it (a child process, real signals), YARA only with a
// RULES_DIR of its own: the result cache, SIGHUP and RULES_WATCH reloads, and a broken rule file.
let rules: string;
let collector: Collector;
const engines: ChildProcess[] = [];

beforeAll(async () => {
  rules = await mkdtemp(join(tmpdir(), "engine-reload-rules-"));
  await writeFile(
    join(rules, "base.yar"),
    'rule OldWord { strings: $a = "OLDWORD" condition: $a }',
  );
  collector = await startCollector();
});
afterAll(async () => {
  for (const engine of engines) engine.kill("SIGKILL");
  await collector?.close();
  await rm(rules, { recursive: true, force: true });
});

/** Starts `microengine serve` on a free port; resolves with its URL and its log lines. */
async function startServe(environment: Record<string, string> = {}) {
  const child = spawn(process.execPath, [cliPath, "serve", "--port", "0"], {
    env: {
      ...process.env,
      WEBHOOK_SECRET: secret,
      ENGINE_BACKENDS: "yara",
      YARA_ENGINE: "wasm",
      RULES_DIR: rules,
      ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
      LOG_LEVEL: "info",
      LOG_FORMAT: "json",
      ...environment,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  engines.push(child);
  const logs: Array<{ msg: string; [key: string]: unknown }> = [];
  // The engine logs to stderr (stdout is for command output).
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      logs.push({ msg: line });
    }
  });
  await vi.waitFor(() => expect(logs.some((log) => log.msg.includes("listening on"))).toBe(true), {
    timeout: 30_000,
  });
  const url = String(logs.find((log) => log.msg.includes("listening on"))?.url);
  return { child, url, logs };
}

/** Posts a bounty for `content` and returns its answer. */
async function ask(url: string, content: string) {
  const { id, text } = bountyBody(collector, {
    artifact_uri: `data:application/octet-stream;base64,${Buffer.from(content).toString("base64")}`,
  });
  const response = await fetch(`${url}/`, { method: "POST", headers: signed(text), body: text });
  expect(response.status).toBe(202);
  return answerOf(collector, id, 10_000);
}

const cached = (answer: { metadata: Record<string, unknown> }) =>
  (answer.metadata.cache as { hit?: boolean } | undefined)?.hit === true;

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((each) => each.startsWith(name));
  return line ? Number(line.split(" ").pop()) : Number.NaN;
}

describe("the result cache in serve", () => {
  it("answers a repeat from the cache (and says so), counts hits and misses, keeps it over a reload that changed nothing", async () => {
    const { url, child } = await startServe();
    const first = await ask(url, "hello OLDWORD");
    const second = await ask(url, "hello OLDWORD");
    expect([first.verdict, second.verdict]).toEqual(["malicious", "malicious"]);
    expect([cached(first), cached(second)]).toEqual([false, true]);
    expect(await metric(url, "engine_cache_hits_total")).toBe(1);
    expect(await metric(url, "engine_cache_misses_total")).toBe(1);
    // A cached answer runs no backend: it is not counted as a scan.
    expect(await metric(url, 'engine_scans_total{backend="yara",verdict="malicious"}')).toBe(1);
    // /metrics refreshes the rules' age through the backends' own health probes.
    expect(
      await metric(url, 'engine_signatures_age_seconds{backend="yara"}'),
    ).toBeGreaterThanOrEqual(0);
    child.kill("SIGHUP");
    await vi.waitFor(
      async () =>
        expect(await metric(url, 'engine_signatures_reloads_total{backend="yara"}')).toBe(1),
      { timeout: 10_000 },
    );
    // The key is the rules' content, not a reload counter: a reload that changed nothing keeps
    // the answers (the next test changes the rules).
    expect(cached(await ask(url, "hello OLDWORD"))).toBe(true);
    child.kill("SIGTERM");
  });
});

describe("reloading rules while serving", () => {
  it("answers a repeated POST /scan from the cache, keyed on the hash the engine computed, raw or multipart, small or spilled to disk", async () => {
    const { url } = await startServe();
    const scan = async (body: Uint8Array, multipart: boolean) => {
      const init: RequestInit = multipart
        ? { method: "POST", body: formOf(body) }
        : {
            method: "POST",
            body,
            headers: { "content-type": "application/octet-stream" },
          };
      const response = await fetch(`${url}/scan`, init);
      expect(response.status).toBe(200);
      return (await response.json()) as { verdict: string; metadata: Record<string, unknown> };
    };
    const formOf = (body: Uint8Array) => {
      const form = new FormData();
      form.append("file", new Blob([body]), "upload.bin");
      return form;
    };
    const small = Buffer.from("an upload with OLDWORD inside");
    // Past the 1 MiB held in memory: held in a temp file, hashed all the same.
    const large = Buffer.concat([Buffer.alloc(3 * 1024 * 1024, 0x41), small]);
    for (const [body, multipart] of [
      [small, false],
      [large, true],
    ] as const) {
      const first = await scan(body, multipart);
      const second = await scan(body, multipart);
      expect([first.verdict, second.verdict]).toEqual(["malicious", "malicious"]);
      expect([cached(first), cached(second)]).toEqual([false, true]);
    }
    // Other bytes (one byte changed) are another key: a miss, scanned.
    const other = Buffer.from(small);
    other[0] = 0x41;
    expect(cached(await scan(other, false))).toBe(false);
    expect(await metric(url, "engine_cache_hits_total")).toBe(2);
    expect(await metric(url, "engine_cache_misses_total")).toBe(3);
  });

  it("SIGHUP: a new rule file detects at once; a broken one keeps the last good rules and the engine serving", async () => {
    const { url, child, logs } = await startServe();
    expect((await ask(url, "a NEWWORD here")).verdict).toBe("benign");
    await writeFile(
      join(rules, "new.yar"),
      'rule NewWord { strings: $a = "NEWWORD" condition: $a }',
    );
    child.kill("SIGHUP");
    await vi.waitFor(() => expect(logs.some((log) => log.msg === "reload done")).toBe(true), {
      timeout: 10_000,
    });
    const detected = await ask(url, "a NEWWORD here");
    expect(detected.verdict).toBe("malicious");
    expect(cached(detected)).toBe(false); // the benign answer from the old rules is not reused

    await writeFile(join(rules, "broken.yar"), "rule Broken { condition: ");
    child.kill("SIGHUP");
    await vi.waitFor(
      () =>
        expect(logs.some((log) => log.msg === "reload failed; serving the last good rules")).toBe(
          true,
        ),
      { timeout: 10_000 },
    );
    expect(await metric(url, 'engine_rules_reload_failures_total{backend="yara"}')).toBe(1);
    const failure = logs.find((log) => log.msg.startsWith("YARA rules NOT reloaded"));
    expect(JSON.stringify(failure)).toContain("broken.yar");
    expect((await ask(url, "still NEWWORD and OLDWORD")).verdict).toBe("malicious");
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    child.kill("SIGTERM");
    await rm(join(rules, "broken.yar"));
    await rm(join(rules, "new.yar"));
  });

  it("RULES_WATCH: a changed rule file is picked up without a signal", async () => {
    const { url, child, logs } = await startServe({ RULES_WATCH: "true" });
    expect((await ask(url, "WATCHWORD")).verdict).toBe("benign");
    await writeFile(
      join(rules, "watched.yar"),
      'rule Watched { strings: $a = "WATCHWORD" condition: $a }',
    );
    await vi.waitFor(
      () => expect(logs.some((log) => log.msg === "YARA rules reloaded")).toBe(true),
      {
        timeout: 10_000,
      },
    );
    expect((await ask(url, "WATCHWORD")).verdict).toBe("malicious");
    // Replaced as a whole (a new directory renamed into place): the watch follows it.
    const replacement = await mkdtemp(join(tmpdir(), "engine-reload-next-"));
    await writeFile(join(replacement, "base.yar"), await readFile(join(rules, "base.yar")));
    await writeFile(
      join(replacement, "swapped.yar"),
      'rule Swapped { strings: $a = "SWAPWORD" condition: $a }',
    );
    await rename(rules, `${rules}.old`);
    await rename(replacement, rules);
    await vi.waitFor(async () => expect((await ask(url, "SWAPWORD")).verdict).toBe("malicious"), {
      timeout: 15_000,
      interval: 500,
    });
    await writeFile(
      join(rules, "later.yar"),
      'rule Later { strings: $a = "LATERWORD" condition: $a }',
    );
    await vi.waitFor(async () => expect((await ask(url, "LATERWORD")).verdict).toBe("malicious"), {
      timeout: 15_000,
      interval: 500,
    });
    // Removed and made again (ext4 may give it the same inode), with a rule in a subdirectory.
    const base = await readFile(join(rules, "base.yar"));
    await rm(rules, { recursive: true, force: true });
    await mkdir(join(rules, "sub"), { recursive: true });
    await writeFile(join(rules, "base.yar"), base);
    await writeFile(
      join(rules, "sub", "deep.yar"),
      'rule Deep { strings: $a = "DEEPWORD" condition: $a }',
    );
    await vi.waitFor(async () => expect((await ask(url, "DEEPWORD")).verdict).toBe("malicious"), {
      timeout: 15_000,
      interval: 500,
    });
    child.kill("SIGTERM");
    await rm(`${rules}.old`, { recursive: true, force: true });
    await rm(join(rules, "sub"), { recursive: true, force: true });
  });
});
