// A large upload through a real HTTP server holds a bounded amount of memory, however large
// the file: each body chunk is released once written to storage and to the scanner. (Reading
// the body by racing every read against one long-lived abort promise kept every chunk alive:
// a 1 GB upload took the server to 1.1 GB of RSS.)
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { defineScanner } from "@engine/core";
import { expect, it } from "vitest";
import { createUploadGuard, diskStorage } from "../src/index.js";
import { storageDirectory } from "./harness.js";

it("streams a 256 MiB upload holding less than 96 MiB of buffers", async () => {
  const storage = storageDirectory();
  const reading = defineScanner({
    name: "reading",
    async scan(artifact, { signal }) {
      for await (const _ of artifact.stream({ signal }));
      return { verdict: "benign", confidence: 1, metadata: { malware_family: "" } };
    },
  });
  const guard = createUploadGuard({
    scanner: reading,
    storage: diskStorage({ directory: storage.directory }),
    limits: { fileBytes: 512 * 1024 ** 2, requestBytes: 520 * 1024 ** 2 },
  });
  const server = createServer(async (request, response) => {
    const outcome = await guard.handle({ headers: request.headers, body: request });
    response.end(outcome.ok ? "kept" : outcome.problem.code);
  });
  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    start: (controller) =>
      controller.enqueue(
        Buffer.from('--b\r\ncontent-disposition: form-data; name="f"; filename="big.bin"\r\n\r\n'),
      ),
    pull(controller) {
      if (sent++ < 256) return controller.enqueue(chunk);
      controller.enqueue(Buffer.from("\r\n--b--\r\n"));
      controller.close();
    },
  });
  let peak = 0;
  const sampler = setInterval(() => {
    globalThis.gc?.();
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }, 50);
  try {
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/`, {
      method: "POST",
      headers: { "content-type": "multipart/form-data; boundary=b" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(await response.text()).toBe("kept");
    expect(peak / 1024 ** 2).toBeLessThan(96);
  } finally {
    clearInterval(sampler);
    server.close();
    storage.remove();
  }
}, 60_000);
