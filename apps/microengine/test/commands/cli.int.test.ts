import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { startManagedClamd } from "@engine/clamav/managed";
import { clamdAlertsOff } from "@engine/clamav/testing";
import { eicarBytes } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  freshclamInstalled,
  officialDatabaseFiles,
} from "../../src/backends/clamav/clamav-coverage.js";
import { microengine, run } from "../harness/cli.js";

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-cli-"));
  await mkdir(join(directory, "nested"));
  await writeFile(join(directory, "clean.txt"), "a clean file\n");
  await writeFile(join(directory, "nested", "eicar.com"), eicarBytes());
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe("microengine", () => {
  it("scan: one JSON line per artifact, recursively, exit code 1 when something is malicious", async () => {
    const { code, stdout } = await microengine(["scan", "--json", directory]);
    expect(code).toBe(1);
    const lines = stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { path: string; verdict: string });
    expect(lines.map((line) => [line.path.replace(directory, ""), line.verdict]).sort()).toEqual([
      ["/clean.txt", "benign"],
      ["/nested/eicar.com", "malicious"],
    ]);
  });

  it("scan: a summary table, exit code 0 when clean and 2 on errors", async () => {
    const clean = await microengine(["scan", "--backends", "eicar", join(directory, "clean.txt")]);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/benign\s+1/);
    expect(
      (await microengine(["scan", "--backends", "eicar", join(directory, "missing")])).code,
    ).toBe(2);
  });

  it("check: passes with the embedded default and prints versions", async () => {
    const { code, stdout } = await microengine(["check"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/PASS EICAR: malicious/);
    expect(stdout).toMatch(/yara: version \S+, signatures \S+/);
    // Inside an archive: by YARA (in the member) and by ClamAV (which decodes a tar.gz itself).
    expect(stdout).toMatch(
      /^PASS EICAR in a tar\.gz: malicious .* yara=malicious\(in eicar\.tar\.gz!\/eicar\.tar\) clamav=malicious$/m,
    );
    expect(stdout).toMatch(/^PASS benign tar\.gz: benign /m);
    expect(stdout).toMatch(
      /PASS clamav reports a password-protected zip of EICAR: Heuristics\.Encrypted\.Zip FOUND/,
    );
    expect(stdout).toMatch(
      /PASS clamav reports EICAR nested 40 zips deep: Heuristics\.Limits\.Exceeded/,
    );
    // Which case this machine is: RULES_DIR unset (YARA has the bundled EICAR rule), so the
    // engine has real coverage only when /var/lib/clamav holds an official database.
    if (officialDatabaseFiles("/var/lib/clamav").length > 0)
      expect(stdout).toMatch(/^engine healthy$/m);
    else {
      expect(stdout).toMatch(
        /^engine working, test signatures only: benign answers bid the minimum$/m,
      );
      expect(stdout).not.toMatch(/engine healthy/);
      // The banner names the cause.
      expect(stdout).toMatch(
        freshclamInstalled()
          ? /WARNING: ClamAV detects EICAR and test samples only: \/var\/lib\/clamav holds no database files \(main\/daily \.cvd\/\.cld\) although freshclam is installed/
          : /WARNING: ClamAV detects EICAR and test samples only: freshclam is not installed/,
      );
    }
  });

  it("check: fails, naming the clamd.conf settings, against a clamd that answers OK for what it cannot inspect", async () => {
    await using bare = await startManagedClamd({
      tcp: false,
      config: clamdAlertsOff,
    });
    const { code, stdout } = await microengine(["check"], {
      CLAMD_SOCKET: bare.socketPath ?? "",
    });
    expect(code).toBe(1);
    expect(stdout).toMatch(/PASS EICAR: malicious/);
    expect(stdout).toMatch(
      /FAIL clamav answers OK for a password-protected zip of EICAR.*AlertEncryptedArchive yes/,
    );
    expect(stdout).toMatch(
      /FAIL clamav answers OK for EICAR nested 40 zips deep.*AlertExceedsMax yes/,
    );
    expect(stdout).toMatch(/engine NOT healthy/);
  });

  it("loads no service module (HTTP server, queue, Redis, downloads) for scan and check, and loads them for serve", async () => {
    const hook = join(import.meta.dirname, "../fixtures/record-module-loads.mjs");
    const heavy = /\/node_modules\/(?:\.pnpm\/)?(bullmq|ioredis|fastify|undici)[@/]/;
    const loaded = async (args: string[]): Promise<string[]> => {
      const record = join(directory, `modules-${args[0]}.txt`);
      await writeFile(record, "");
      await microengine(args, {
        NODE_OPTIONS: `--import=${hook}`,
        RECORD_MODULE_LOADS: record,
      });
      const urls = (await readFile(record, "utf8")).split("\n");
      expect(urls.length).toBeGreaterThan(10); // the hook saw the program load
      return [...new Set(urls.map((url) => heavy.exec(url)?.[1]).filter(Boolean))] as string[];
    };
    expect(await loaded(["scan", "--backends", "eicar", join(directory, "clean.txt")])).toEqual([]);
    expect(await loaded(["check", "--backends", "eicar"])).toEqual([]);
    // The contrast: serve loads them (it stops at once here: no WEBHOOK_SECRET).
    expect((await loaded(["serve", "--backends", "eicar", "--port", "0"])).sort()).toEqual(
      expect.arrayContaining(["fastify", "undici"]),
    );
  });

  it("sizes the libuv thread pool before Node's loader starts it (4 blocked threads leave others free)", async () => {
    const probe = join(import.meta.dirname, "../fixtures/thread-pool-probe.mjs");
    const launched = await microengine([], {
      MICROENGINE_ENTRY_FOR_TESTS: probe,
      UV_THREADPOOL_SIZE: "",
    });
    expect(launched.stdout.trim()).toBe(`free ${8 + availableParallelism()}`);
    // The contrast: sizing it from an ES module's body is too late, the pool already has 4.
    const { stdout } = await run(process.execPath, [
      join(import.meta.dirname, "../fixtures/module-body-sizing.mjs"),
    ]);
    expect(stdout.trim()).toBe("starved 16");
  });

  it("starts node with the flags of its first line, run as a program, by the root script and by start.sh", async () => {
    const bin = join(import.meta.dirname, "../../bin/microengine.cjs");
    const shebang = (await readFile(bin, "utf8")).split("\n")[0] ?? "";
    const flags = /^#!\/usr\/bin\/env -S node (.+)$/.exec(shebang)?.[1] ?? "";
    expect(flags).toBe("--initial-old-space-size=64");
    const { stdout } = await run(bin, [], {
      env: {
        ...process.env,
        MICROENGINE_ENTRY_FOR_TESTS: join(import.meta.dirname, "../fixtures/print-node-flags.mjs"),
      },
    });
    expect(JSON.parse(stdout)).toEqual(flags.split(" "));
    // The other ways to the command give node the same flags: the root script, and the
    // launcher scripts/install-cli.sh writes (run here into a scratch directory).
    const root = join(import.meta.dirname, "../../../..");
    const scripts = JSON.parse(await readFile(join(root, "package.json"), "utf8")).scripts;
    expect(scripts.microengine).toBe(`node ${flags} apps/microengine/bin/microengine.cjs`);
    await run(join(root, "scripts/install-cli.sh"), [join(directory, "prefix")]);
    const launcher = await readFile(join(directory, "prefix", "bin", "microengine"), "utf8");
    expect(launcher).toContain(`exec node ${flags} '${bin}'`);
  });

  it("serve: never echoes a QUEUE_URL password", async () => {
    const queue = await microengine(["serve", "--backends", "eicar", "--port", "0"], {
      WEBHOOK_SECRET: "x",
      QUEUE_URL: "redis://:s3cretpass@127.0.0.1:1",
      QUEUE_SECRET: "cli-test-queue-secret",
    });
    expect(queue.code).toBe(2);
    expect(queue.stderr).toMatch(
      /QUEUE_URL: cannot reach Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1/,
    );
    expect(`${queue.stdout}${queue.stderr}`).not.toContain("s3cretpass");
  });

  it("refuses bad configuration naming the variable, and serve without WEBHOOK_SECRET", async () => {
    const badPort = await microengine(["check"], { PORT: "eighty" });
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/PORT: /);
    const badFlag = await microengine(["check", "--backends", "avast"]);
    expect(badFlag.stderr).toMatch(/ENGINE_BACKENDS/);
    const noSecret = await microengine(["serve", "--backends", "eicar", "--port", "0"], {
      WEBHOOK_SECRET: "",
    });
    expect(noSecret.code).toBe(2);
    expect(noSecret.stderr).toMatch(/WEBHOOK_SECRET: required/);
  });
});
