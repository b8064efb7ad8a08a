// The adapters in front of real scanners: a managed clamd and YARA, combined by
// @engine/multi, as an app would compose them. EICAR is refused by both, a file only a YARA
// rule detects is refused, a benign file is stored, and with clamd stopped the upload is
// refused 503 (never stored, never 2xx).
import { createClamavScanner } from "@engine/clamav";
import { type ManagedClamd, startManagedClamd } from "@engine/clamav/managed";
import { createMultiScanner } from "@engine/multi";
import { createYaraScanner } from "@engine/yara";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  adapters,
  eicarPart,
  optionsFor,
  postForm,
  type RunningApp,
  storageDirectory,
  textPart,
} from "./harness.js";

const marker = "ENGINE-UPLOAD-YARA-ONLY-5d1e";
const rules = {
  upload: `rule upload_marker { meta: malware_family = "Upload.Marker" strings: $m = "${marker}" condition: $m }`,
};

let clamd: ManagedClamd;
beforeAll(async () => {
  clamd = await startManagedClamd();
});
afterAll(async () => {
  await clamd?.[Symbol.asyncDispose]();
});

describe.each(adapters)("%s with clamd and YARA", (_, start) => {
  let app: RunningApp | undefined;
  let storage: ReturnType<typeof storageDirectory>;
  let scanner: ReturnType<typeof createMultiScanner>;
  beforeAll(async () => {
    scanner = createMultiScanner([
      createClamavScanner({
        ...clamd.clientOptions("socket"),
        signaturesVersion: clamd.signaturesVersion,
      }),
      createYaraScanner({ rules, onDiagnostics: () => {} }),
    ]);
    await scanner.setup?.();
  });
  afterAll(async () => {
    await scanner?.close?.();
  });
  afterEach(async () => {
    await app?.close();
    storage?.remove();
  });
  const serve = async () => {
    storage = storageDirectory();
    const limits = { fileBytes: 64 * 1024 * 1024 };
    app = await start(optionsFor(storage.directory, { scanner, timeoutMs: 20_000, limits }));
    return app;
  };

  it("refuses EICAR and a file only a YARA rule detects (422), stores a benign file", async () => {
    const { url } = await serve();
    const eicar = await postForm(url, [eicarPart()]);
    expect(eicar.status).toBe(422);
    expect(await eicar.json()).toMatchObject({ code: "malicious" });
    const yaraOnly = await postForm(url, [textPart("file", `notes\n${marker}\n`)]);
    expect(yaraOnly.status).toBe(422);
    expect(storage.entries()).toEqual([]);
    const benign = await postForm(url, [textPart()]);
    expect(benign.status).toBe(200);
    expect(storage.entries()).toHaveLength(1);
  });

  it("streams a 40 MB upload through both scanners and keeps it", async () => {
    const { url } = await serve();
    const big = Buffer.alloc(40 * 1024 * 1024, "a line of an ordinary big text file\n");
    const response = await postForm(url, [
      { field: "file", filename: "big.txt", type: "text/plain", content: big },
    ]);
    expect(response.status).toBe(200);
    expect(storage.entries()).toHaveLength(1);
  });
});

describe("clamd stopped", () => {
  it("refuses the upload 503 with Retry-After and stores nothing", async () => {
    const storage = storageDirectory();
    const down = await startManagedClamd();
    const scanner = createClamavScanner({
      ...down.clientOptions("socket"),
      signaturesVersion: down.signaturesVersion,
    });
    await down.stop();
    const [, start] = adapters[0] ?? [];
    const app = await start?.(optionsFor(storage.directory, { scanner, timeoutMs: 10_000 }));
    try {
      const response = await postForm(app?.url ?? "", [textPart()]);
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toBe("30");
      expect(storage.entries()).toEqual([]);
    } finally {
      await app?.close();
      await down[Symbol.asyncDispose]();
      storage.remove();
    }
  });
});
