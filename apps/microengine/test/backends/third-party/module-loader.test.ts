import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromBytes, BackendUnavailableError } from "@engine/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BackendModuleError,
  loadBackendModule,
} from "../../../src/backends/third-party/module-loader.js";

// Modules that never finish: every step of a third-party backend is bounded in time.
let directory: string;
const answer = '{ verdict: "benign", confidence: 1, metadata: { malware_family: "" } }';
const modules: Record<string, string> = {
  "never-loads.mjs": "await new Promise(() => {}); export function createScanner() {}",
  "never-creates.mjs": "export function createScanner() { return new Promise(() => {}); }",
  "never-sets-up.mjs": `export function createScanner() {
    return { name: "stuck", setup: () => new Promise(() => {}), async scan() { return ${answer}; } };
  }`,
  "never-closes.mjs": `export const calls = [];
  export function createScanner() {
    return { name: "sticky", async scan() { return ${answer}; },
      close() { calls.push("close"); return new Promise(() => {}); } };
  }`,
  "closes-once.mjs": `export const calls = [];
  export function createScanner() {
    return { name: "once", async setup() {}, async scan() { return ${answer}; },
      async close() { calls.push("close"); } };
  }`,
};
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-module-unit-"));
  for (const [name, text] of Object.entries(modules)) await writeFile(join(directory, name), text);
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

const load = (name: string) =>
  loadBackendModule(`./${name}`, { cwd: directory, startMs: 100, closeMs: 100 });

describe("third-party backend modules are bounded in time", () => {
  it("a module that never finishes importing, or a factory that never returns, is a start-up error", async () => {
    await expect(load("never-loads.mjs")).rejects.toThrow(
      'ENGINE_BACKENDS entry "./never-loads.mjs": cannot be imported: did not finish loading within 0.1 s',
    );
    await expect(load("never-creates.mjs")).rejects.toThrow(
      'ENGINE_BACKENDS entry "./never-creates.mjs": createScanner() failed: did not return within 0.1 s',
    );
    await expect(load("never-creates.mjs")).rejects.toBeInstanceOf(BackendModuleError);
  });

  it("a setup that never ends fails the scan (typed) instead of holding it", async () => {
    const module = await load("never-sets-up.mjs");
    await expect(module.scanner.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
    await module.dispose();
  });

  it("a close that never ends does not hold shutdown, and close is called once", async () => {
    const sticky = await load("never-closes.mjs");
    await sticky.scanner.scan(artifactFromBytes("x"));
    const started = Date.now();
    await sticky.scanner.close?.().catch(() => {});
    await sticky.dispose();
    expect(Date.now() - started).toBeLessThan(1_000);
    const once = await load("closes-once.mjs");
    await once.scanner.scan(artifactFromBytes("x"));
    await once.scanner.close?.();
    await once.dispose();
    const { calls } = (await import(join(directory, "closes-once.mjs"))) as { calls: string[] };
    expect(calls).toEqual(["close"]);
  });
});
