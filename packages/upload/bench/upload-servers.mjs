// One upload server of the benchmark, in its own process (its RSS is measured alone):
//   node bench/upload-servers.mjs <engine|clamscan|pompelmi> <clamd socket> <storage directory>
// Every variant is the same Express app shape: POST /upload, one file field, 200 with the
// file kept in the directory when the scan allows it, 422 otherwise. It prints its URL.
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createClamavScanner } from "@engine/clamav";
import { diskStorage } from "@engine/upload";
import { expressUploadGuard } from "@engine/upload/express";
import express from "express";
import multer from "multer";

const [variant, socket, directory] = process.argv.slice(2);
const GiB = 1024 ** 3;
const app = express();
let stored = 0;
const keep = (buffer) => writeFile(join(directory, `${variant}-${stored++}`), buffer);

if (variant === "engine") {
  // Ours: parsed as a stream, written to disk while clamd scans it, kept after the verdict.
  const scanner = createClamavScanner({ socket, maxStreamBytes: 2 * GiB });
  const guard = expressUploadGuard({
    scanner,
    storage: diskStorage({ directory }),
    limits: { fileBytes: 1536 * 1024 ** 2, requestBytes: 1600 * 1024 ** 2 },
    timeoutMs: 600_000,
  });
  app.post("/upload", guard, (_request, response) => response.json({ ok: true }));
} else if (variant === "clamscan") {
  // What most Node users write: multer (memory), then clamscan's scanStream, then storage.
  const { default: NodeClam } = await import("clamscan");
  const clamscan = await new NodeClam().init({
    clamdscan: { socket, timeout: 600_000, localFallback: false },
    preference: "clamdscan",
  });
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 1.5 * GiB } });
  app.post("/upload", upload.single("file"), async (request, response) => {
    const { isInfected } = await clamscan.scanStream(Readable.from([request.file.buffer]));
    if (isInfected !== false) return response.status(422).json({ ok: false });
    await keep(request.file.buffer);
    response.json({ ok: true });
  });
} else if (variant === "pompelmi") {
  // pompelmi 0.26 (the version in the registry): multer (memory), then its scanBytes.
  const { scanBytes } = await import("pompelmi");
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 1.5 * GiB } });
  app.post("/upload", upload.single("file"), async (request, response) => {
    const report = await scanBytes(request.file.buffer);
    if (report.verdict !== "clean") return response.status(422).json({ ok: false });
    await keep(request.file.buffer);
    response.json({ ok: true });
  });
} else {
  throw new Error(`unknown variant ${variant}`);
}

const server = app.listen(0, "127.0.0.1");
await once(server, "listening");
server.requestTimeout = 0;
process.stdout.write(`http://127.0.0.1:${server.address().port}\n`);
process.once("SIGINT", () => process.exit(0));
