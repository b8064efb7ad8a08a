// Every adapter, as a real server of its framework on loopback, against the attacks of the
// issue: what it answers (one problem+json contract) and what is left in storage (nothing,
// unless a file was accepted). The scanner is core's EICAR scanner (real), or a scanner that
// is down or hangs (the fault paths).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defineScanner } from "@engine/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AcceptedBody,
  adapters,
  disconnectMidUpload,
  downScanner,
  eicarPart,
  eventually,
  hangingScanner,
  optionsFor,
  postForm,
  postRaw,
  type RunningApp,
  startExpress,
  storageDirectory,
  textPart,
} from "./harness.js";

const pngHead = Buffer.from("89504e470d0a1a0a0000000d49484452", "hex");

describe.each(adapters)("%s", (_, start) => {
  let app: RunningApp | undefined;
  let storage: ReturnType<typeof storageDirectory>;
  afterEach(async () => {
    await app?.close();
    app = undefined;
    storage?.remove();
  });
  const serve = async (more: Parameters<typeof optionsFor>[1] = {}) => {
    storage = storageDirectory();
    app = await start(optionsFor(storage.directory, more));
    return app;
  };
  const problemOf = async (response: Response) => {
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    return (await response.json()) as {
      status: number;
      code: string;
      type: string;
      detail: string;
      files?: unknown[];
    };
  };

  it("refuses EICAR (422 malicious) and keeps nothing", async () => {
    const { url } = await serve();
    const response = await postForm(url, [eicarPart()]);
    expect(response.status).toBe(422);
    expect(await problemOf(response)).toMatchObject({
      status: 422,
      code: "malicious",
      type: "urn:engine:upload:malicious",
      files: [{ field: "file", filename: "report.txt", code: "malicious" }],
    });
    expect(storage.entries()).toEqual([]);
  });

  it("accepts a benign file, stores it once under its id (never its name), and passes the fields on", async () => {
    const { url } = await serve();
    const content = "quarterly report\n".repeat(40);
    const response = await postForm(url, [
      { field: "title", value: "Q3" },
      textPart("file", content),
    ]);
    expect(response.status).toBe(200);
    const body = (await response.json()) as AcceptedBody;
    expect(body.fields).toEqual({ title: "Q3" });
    expect(body.files).toMatchObject([
      { field: "file", filename: "report.txt", type: "text/plain", decision: "accepted" },
    ]);
    const entries = storage.entries();
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(readFileSync(join(storage.directory, entries[0] ?? "")).toString()).toBe(content);
  });

  it("refuses a disguised type by its magic bytes (415), whatever the name and declared type", async () => {
    const { url } = await serve({ allowedTypes: ["image/png"] });
    const exe = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(200, 0x90)]);
    const response = await postForm(url, [
      { field: "file", filename: "cat.png", type: "image/png", content: exe },
    ]);
    expect(response.status).toBe(415);
    expect(await problemOf(response)).toMatchObject({ code: "type-not-allowed" });
    expect(storage.entries()).toEqual([]);
    const png = await postForm(url, [
      { field: "file", filename: "cat.png", type: "image/png", content: pngHead },
    ]);
    expect(png.status).toBe(200);
  });

  it("refuses a file over fileBytes (413) with nothing stored and no verdict", async () => {
    const { url } = await serve({ limits: { fileBytes: 1024 } });
    const response = await postForm(url, [textPart("file", "x".repeat(10_000))]);
    expect(response.status).toBe(413);
    expect(await problemOf(response)).toMatchObject({ code: "file-too-large" });
    expect(storage.entries()).toEqual([]);
  });

  it("refuses a request over requestBytes (413)", async () => {
    const { url } = await serve({ limits: { requestBytes: 4096 } });
    const response = await postForm(url, [
      textPart("a", "x".repeat(3000)),
      textPart("b", "y".repeat(3000)),
    ]);
    expect(response.status).toBe(413);
    expect(await problemOf(response)).toMatchObject({ code: "request-too-large" });
    expect(storage.entries()).toEqual([]);
  });

  it("answers 503 with Retry-After when the scanner is down, nothing stored, no internals sent", async () => {
    const { url } = await serve({ scanner: downScanner(), retryAfterSeconds: 7 });
    const response = await postForm(url, [textPart()]);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("7");
    const problem = await problemOf(response);
    expect(problem).toMatchObject({ code: "scanner-unavailable" });
    expect(JSON.stringify(problem)).not.toContain("test: the backend is down");
    expect(storage.entries()).toEqual([]);
  });

  it("answers 504 when the scan does not finish by timeoutMs, nothing stored", async () => {
    const scanner = hangingScanner();
    const { url } = await serve({ scanner, timeoutMs: 400 });
    const started = Date.now();
    const response = await postForm(url, [textPart()]);
    expect(response.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await problemOf(response)).toMatchObject({ code: "scan-timeout" });
    expect(storage.entries()).toEqual([]);
    expect(await eventually(() => scanner.aborted === 1)).toBe(true);
  });

  it("aborts the scan and keeps nothing when the client goes away mid-file", async () => {
    const scanner = hangingScanner();
    const { url } = await serve({ scanner, timeoutMs: 20_000 });
    await disconnectMidUpload(url, 256 * 1024);
    expect(await eventually(() => scanner.started === 1)).toBe(true);
    expect(await eventually(() => scanner.aborted === 1)).toBe(true);
    expect(await eventually(() => storage.entries().length === 0)).toBe(true);
  });

  it("answers 400 to a malformed body, and to a body cut before the form's end", async () => {
    const { url } = await serve();
    const garbage = await postRaw(
      url,
      "multipart/form-data; boundary=abc",
      "this is not multipart",
    );
    expect(garbage.status).toBe(400);
    expect(await problemOf(garbage)).toMatchObject({ code: "malformed-multipart" });
    const cut = await postRaw(
      url,
      "multipart/form-data; boundary=abc",
      '--abc\r\ncontent-disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhello, half a file',
    );
    expect(cut.status).toBe(400);
    expect(storage.entries()).toEqual([]);
  });

  it("refuses the whole request for one bad file among several (the default), keeping nothing", async () => {
    const { url } = await serve();
    const response = await postForm(url, [textPart("a"), eicarPart("b"), textPart("c")]);
    expect(response.status).toBe(422);
    const problem = await problemOf(response);
    expect(problem.files).toEqual([
      { field: "a", filename: "report.txt" },
      { field: "b", filename: "report.txt", code: "malicious" },
      { field: "c", filename: "report.txt" },
    ]);
    expect(storage.entries()).toEqual([]);
  });

  it('keeps the good files and refuses the bad one under onRefusedFile: "per-file"', async () => {
    const { url } = await serve({ onRefusedFile: "per-file" });
    const response = await postForm(url, [textPart("a"), eicarPart("b")]);
    expect(response.status).toBe(200);
    const body = (await response.json()) as AcceptedBody;
    expect(body.files).toMatchObject([
      { field: "a", decision: "accepted" },
      { field: "b", decision: "refused", code: "malicious" },
    ]);
    expect(storage.entries()).toHaveLength(1);
  });

  it("refuses more files than allowed (413 too-many-files)", async () => {
    const { url } = await serve({ limits: { files: 2 } });
    const response = await postForm(url, [textPart("a"), textPart("b"), textPart("c")]);
    expect(response.status).toBe(413);
    expect(await problemOf(response)).toMatchObject({ code: "too-many-files" });
    expect(storage.entries()).toEqual([]);
  });
});

describe("a scanner that answers before it read the whole file", () => {
  it("is never taken as a pass: the file is refused as not inspectable (422)", async () => {
    const storage = storageDirectory();
    const prefixOnly = defineScanner({
      name: "prefix-only",
      async scan(artifact, { signal }) {
        for await (const _ of artifact.stream({ signal })) break; // one chunk, then an answer
        return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
      },
    });
    const app = await startExpress(optionsFor(storage.directory, { scanner: prefixOnly }));
    try {
      const response = await postForm(app.url, [textPart("file", "x".repeat(4 * 1024 * 1024))]);
      expect(response.status).toBe(422);
      expect(((await response.json()) as { code: string }).code).toBe("not-inspectable");
      expect(storage.entries()).toEqual([]);
    } finally {
      await app.close();
      storage.remove();
    }
  });
});
