// scanMulterFiles after a real multer (disk and memory storage) in a real Express app.
import type { AddressInfo } from "node:net";
import { createEicarScanner } from "@engine/core";
import express from "express";
import multer from "multer";
import { afterEach, describe, expect, it } from "vitest";
import { scanMulterFiles } from "../src/adapters/express.js";
import { downScanner, eicarPart, postForm, storageDirectory, textPart } from "./harness.js";

let close: (() => Promise<void>) | undefined;
let storage: ReturnType<typeof storageDirectory> | undefined;
afterEach(async () => {
  await close?.();
  storage?.remove();
});

async function start(
  upload: express.RequestHandler,
  scanner = createEicarScanner(),
): Promise<string> {
  const app = express();
  app.post("/upload", upload, scanMulterFiles({ scanner }), (_request, response) => {
    response.json({ ok: true });
  });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  close = () => new Promise((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe("scanMulterFiles", () => {
  it("deletes every file multer stored when one is malware, and answers 422", async () => {
    storage = storageDirectory();
    const url = await start(multer({ dest: storage.directory }).array("file"));
    const refused = await postForm(url, [textPart(), eicarPart()]);
    expect(refused.status).toBe(422);
    expect(await refused.json()).toMatchObject({ code: "malicious" });
    expect(storage.entries()).toEqual([]);
    const accepted = await postForm(url, [textPart()]);
    expect(accepted.status).toBe(200);
    expect(storage.entries()).toHaveLength(1);
  });

  it("scans memory storage too, and answers 503 when the scanner is down", async () => {
    const url = await start(multer({ storage: multer.memoryStorage() }).single("file"));
    expect((await postForm(url, [eicarPart()])).status).toBe(422);
    expect((await postForm(url, [textPart()])).status).toBe(200);
    await close?.();
    const down = await start(
      multer({ storage: multer.memoryStorage() }).single("file"),
      downScanner(),
    );
    const response = await postForm(down, [textPart()]);
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("30");
  });
});
