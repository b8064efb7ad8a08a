// The upload example: an HTML form whose files are scanned by a managed clamd before they are
// kept. Run it from packages/upload after `pnpm build` (clamd comes from Debian's
// clamav-daemon; the signatures shipped with @engine/clamav detect EICAR):
//
//   node example/server.mjs        then open http://127.0.0.1:3000
//
// Uploading EICAR shows the refusal; a benign file is accepted and lands in ./uploads.
import { once } from "node:events";
import { pathToFileURL } from "node:url";
import { createClamavScanner } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { diskStorage } from "@engine/upload";
import { expressUploadGuard } from "@engine/upload/express";
import express from "express";

const page = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Upload</title>
<style>body{font:16px system-ui;margin:3rem auto;max-width:36rem}#result{margin-top:1rem;padding:.75rem;border-radius:.4rem}
.accepted{background:#e6f4ea}.refused{background:#fce8e6}</style></head>
<body>
<h1>Upload a file</h1>
<form id="upload" action="/upload" method="post" enctype="multipart/form-data">
  <input type="file" name="file" multiple required>
  <button type="submit">Upload</button>
</form>
<div id="result" role="status"></div>
<script>
  const form = document.getElementById("upload");
  const result = document.getElementById("result");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    result.className = "";
    result.textContent = "Checking…";
    const response = await fetch(form.action, { method: "POST", body: new FormData(form) });
    const body = await response.json();
    if (response.ok) {
      result.className = "accepted";
      result.textContent = "Accepted: " + body.kept.map((file) => file.filename).join(", ");
    } else {
      result.className = "refused";
      result.textContent = "Refused (" + response.status + " " + body.code + "): " + body.title;
    }
  });
</script>
</body>
</html>`;

/**
 * Starts the example: a managed clamd, and an Express app serving the form on `port` (0 for
 * any) and `POST /upload` behind expressUploadGuard, storing accepted files in `directory`.
 */
export async function startExample({ port = 3000, directory = "uploads" } = {}) {
  const clamd = await startManagedClamd();
  const scanner = createClamavScanner({
    ...clamd.clientOptions(),
    signaturesVersion: clamd.signaturesVersion,
  });
  const guard = expressUploadGuard({ scanner, storage: diskStorage({ directory }) });
  const app = express();
  app.get("/", (_request, response) => response.type("html").send(page));
  app.post("/upload", guard, (request, response) => {
    response.json({
      kept: request.files.map(({ id, filename, type, size }) => ({ id, filename, type, size })),
    });
  });
  const server = app.listen(port, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await scanner.close?.();
      await clamd[Symbol.asyncDispose]();
    },
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const example = await startExample({ port: Number(process.env.PORT ?? 3000) });
  process.stdout.write(`upload example on ${example.url} (Ctrl-C to stop)\n`);
  for (const signal of ["SIGINT", "SIGTERM"])
    process.once(signal, () => example.close().then(() => process.exit(0)));
}
