// nextUploadGuard in a real Next.js app (test/next-app: App Router route handlers), built with
// `next build` and served by `next start`, against the attacks every adapter faces. The app
// loads @engine/upload from this package's build (run `pnpm build` first).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  disconnectMidUpload,
  eicarPart,
  postForm,
  postRaw,
  storageDirectory,
  textPart,
} from "./harness.js";

const run = promisify(execFile);
const appDirectory = fileURLToPath(new URL("./next-app/", import.meta.url));
const nextBin = fileURLToPath(new URL("../node_modules/next/dist/bin/next", import.meta.url));

/** A free loopback port (next start takes a port, not 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

let next: ChildProcess | undefined;
let base = "";
const storage = storageDirectory();
beforeAll(async () => {
  // The routes' modules load at build time too (Next collects their configuration).
  await run(process.execPath, [nextBin, "build", appDirectory], {
    env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1", UPLOAD_DIRECTORY: storage.directory },
    maxBuffer: 64 * 1024 * 1024,
  });
  const port = await freePort();
  next = spawn(
    process.execPath,
    [nextBin, "start", appDirectory, "-p", String(port), "-H", "127.0.0.1"],
    {
      env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1", UPLOAD_DIRECTORY: storage.directory },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  base = `http://127.0.0.1:${port}`;
  const until = Date.now() + 60_000;
  for (;;) {
    const up = await fetch(`${base}/api/hang`).then(
      (response) => response.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > until) throw new Error("next start did not answer within 60 s");
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}, 240_000);
afterAll(async () => {
  next?.kill("SIGTERM");
  storage.remove();
  rmSync(new URL("./next-app/.next", import.meta.url), { recursive: true, force: true });
});

const clean = () => {
  for (const entry of storage.entries()) rmSync(`${storage.directory}/${entry}`, { force: true });
};
afterEach(clean);

const route = (path: string) => `${base}/api/${path}`;
const post = (path: string, parts: Parameters<typeof postForm>[1]) =>
  postForm(base, parts, `/api/${path}`);
const problemOf = async (response: Response) => {
  expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  return (await response.json()) as { code: string; files?: unknown[] };
};

describe("next (App Router route handlers)", () => {
  it("refuses EICAR (422 malicious) and keeps nothing", async () => {
    const response = await post("upload", [eicarPart()]);
    expect(response.status).toBe(422);
    expect(await problemOf(response)).toMatchObject({ code: "malicious" });
    expect(storage.entries()).toEqual([]);
  });

  it("accepts a benign file, stores it once, and passes the fields on", async () => {
    const response = await post("upload", [{ field: "title", value: "Q3" }, textPart()]);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      fields: { title: "Q3" },
      files: [{ field: "file", decision: "accepted", type: "text/plain" }],
    });
    expect(storage.entries()).toHaveLength(1);
  });

  it("refuses a disguised type by its magic bytes (415)", async () => {
    const exe = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(200, 0x90)]);
    const response = await post("png", [
      { field: "file", filename: "cat.png", type: "image/png", content: exe },
    ]);
    expect(response.status).toBe(415);
    expect(await problemOf(response)).toMatchObject({ code: "type-not-allowed" });
    expect(storage.entries()).toEqual([]);
  });

  it("refuses a file over the limit (413) and too many files (413), nothing stored", async () => {
    const big = await post("upload", [textPart("file", "x".repeat(2 * 1024 * 1024))]);
    expect({ status: big.status, body: await big.text() }).toMatchObject({
      status: 413,
      body: expect.stringContaining('"code":"file-too-large"'),
    });
    const many = await post("upload", [textPart("a"), textPart("b"), textPart("c"), textPart("d")]);
    expect(many.status).toBe(413);
    expect(storage.entries()).toEqual([]);
  });

  it("answers 503 with Retry-After when the scanner is down, and 504 when it hangs", async () => {
    const down = await post("down", [textPart()]);
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("30");
    expect(await problemOf(down)).toMatchObject({ code: "scanner-unavailable" });
    const hang = await post("hang", [textPart()]);
    expect(hang.status).toBe(504);
    expect(storage.entries()).toEqual([]);
  });

  it("aborts the scan and keeps nothing when the client goes away mid-file", async () => {
    const before = (await (await fetch(route("hang"))).json()) as {
      started: number;
      aborted: number;
    };
    await disconnectMidUpload(base, 256 * 1024, "/api/hang");
    const counts = async () =>
      (await (await fetch(route("hang"))).json()) as { started: number; aborted: number };
    let latest = before;
    const until = Date.now() + 3_000;
    while (Date.now() < until && latest.aborted <= before.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      latest = await counts();
    }
    expect(latest.aborted).toBeGreaterThan(before.aborted);
    expect(storage.entries()).toEqual([]);
  });

  it("answers 400 to a malformed body and to a request that is not multipart", async () => {
    const garbage = await postRaw(
      base,
      "multipart/form-data; boundary=abc",
      "not multipart",
      "/api/upload",
    );
    expect(garbage.status).toBe(400);
    const json = await postRaw(base, "application/json", "{}", "/api/upload");
    expect(json.status).toBe(400);
    expect(await problemOf(json)).toMatchObject({ code: "malformed-multipart" });
  });

  it("refuses the whole request for one bad file by default; keeps the good ones per file", async () => {
    const whole = await post("upload", [textPart("a"), eicarPart("b")]);
    expect(whole.status).toBe(422);
    expect(storage.entries()).toEqual([]);
    const perFile = await post("per-file", [textPart("a"), eicarPart("b")]);
    expect(perFile.status).toBe(200);
    expect(storage.entries()).toHaveLength(1);
  });
});
