// When the optional native engine does not load, the error names what is missing: the package
// @engine/yara-native itself, or its addon (never built, or built and not loadable). The
// errors are Node's own: a child process imports "@engine/yara-native" from a scratch project
// where it is absent, installed unbuilt (its real index.js and package.json), or installed
// with an addon file that is not a loadable library.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BackendUnavailableError } from "@engine/core";
import { afterAll, describe, expect, it } from "vitest";
import { nativeEngineUnavailable } from "../src/native-engine.js";

const project = mkdtempSync(join(tmpdir(), "engine-yara-native-missing-"));
afterAll(() => rmSync(project, { recursive: true, force: true }));

const nativePackage = join(import.meta.dirname, "../../yara-native");
const installed = join(project, "node_modules/@engine/yara-native");

/** What importing @engine/yara-native from the scratch project throws: Node's code and message. */
function importError(): { code?: string; message: string } {
  const script = `import("@engine/yara-native").then(
    () => console.log(JSON.stringify({ message: "loaded" })),
    (error) => console.log(JSON.stringify({ code: error.code, message: error.message })),
  );`;
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    cwd: project,
    encoding: "utf8",
  });
  return JSON.parse(output);
}

describe("the native engine's error when @engine/yara-native does not load", () => {
  it("says the optional package is not installed, and how to install it", () => {
    const error = nativeEngineUnavailable(importError());
    expect(BackendUnavailableError.isInstance(error)).toBe(true);
    expect(error.message).toBe(
      "@engine/yara: the native engine needs the optional package @engine/yara-native, which is not installed",
    );
    expect(error.hint).toMatch(
      /^Install it next to @engine\/yara \(npm install @engine\/yara-native;/,
    );
    expect(error.hint).toContain('engine: "wasm"');
  });

  it("says the package is installed but its addon was not built, and how to build it", () => {
    mkdirSync(installed, { recursive: true });
    for (const file of ["package.json", "index.js", "index.cjs"])
      copyFileSync(join(nativePackage, file), join(installed, file));
    const error = nativeEngineUnavailable(importError());
    expect(error.message).toBe(
      "@engine/yara: @engine/yara-native is installed but its addon was not built (no build/Release/yara_native.node)",
    );
    expect(error.hint).toContain("apt-get install libyara-dev g++ make python3");
    expect(error.hint).toContain("npm rebuild @engine/yara-native");
    expect(error.hint).not.toMatch(/npm install @engine\/yara-native/);
  });

  it("says the addon is installed but failed to load (libyara or the ABI), with Node's reason", () => {
    mkdirSync(join(installed, "build/Release"), { recursive: true });
    writeFileSync(join(installed, "build/Release/yara_native.node"), "not a shared library");
    const thrown = importError();
    expect(thrown.code).toBe("ERR_DLOPEN_FAILED");
    const error = nativeEngineUnavailable(thrown);
    expect(error.message).toMatch(
      /^@engine\/yara: @engine\/yara-native is installed but its native addon failed to load: .*yara_native\.node/,
    );
    expect(error.hint).toMatch(/^libyara's shared library must be installed/);
    expect(error.hint).toContain("npm rebuild @engine/yara-native");
    expect(error.cause).toBe(thrown);
  });

  it("treats anything else that is thrown as a failed load, never as not installed", () => {
    expect(nativeEngineUnavailable("boom").message).toBe(
      "@engine/yara: @engine/yara-native is installed but its native addon failed to load: boom",
    );
    const elsewhere = { code: "ERR_MODULE_NOT_FOUND", message: "Cannot find package 'zod'" };
    expect(nativeEngineUnavailable(elsewhere).message).toMatch(/failed to load: Cannot find/);
  });
});
