// Real servers of each framework on loopback, with the adapter under test in front of one
// route (`POST /upload`, answering what the guard kept), and the clients that attack them.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BackendUnavailableError,
  createEicarScanner,
  defineScanner,
  eicarBytes,
  type Scanner,
} from "@engine/core";
import { serve } from "@hono/node-server";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import Koa from "koa";
import { expressUploadGuard } from "../src/adapters/express.js";
import { fastifyUploadGuard } from "../src/adapters/fastify.js";
import { honoUploadGuard } from "../src/adapters/hono.js";
import { koaUploadGuard } from "../src/adapters/koa.js";
import { diskStorage, type UploadGuardOptions } from "../src/index.js";

/** A running app: its base URL, and how to stop it. */
export interface RunningApp {
  url: string;
  close(): Promise<void>;
}

/** What every test app's route answers for an accepted upload. */
export interface AcceptedBody {
  fields: Record<string, unknown>;
  files: Array<{
    field: string;
    filename: string;
    type: string;
    decision: string;
    code?: string;
    stored?: { path?: string };
  }>;
}

type Adapter = (options: UploadGuardOptions) => Promise<RunningApp>;

/** A Node HTTP server that was told to listen on a loopback port, once it does. */
async function running(server: Server): Promise<RunningApp> {
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export async function startExpress(options: UploadGuardOptions): Promise<RunningApp> {
  const app = express();
  app.post("/upload", expressUploadGuard(options), (request, response) => {
    const { body, files } = request as unknown as {
      body: AcceptedBody["fields"];
      files: AcceptedBody["files"];
    };
    response.json({ fields: body, files });
  });
  return running(app.listen(0, "127.0.0.1"));
}

export async function startFastify(options: UploadGuardOptions): Promise<RunningApp> {
  const app = Fastify();
  await app.register(fastifyUploadGuard(options));
  app.post("/upload", async (request) => ({
    fields: request.body,
    files: request.upload?.files ?? [],
  }));
  const url = await app.listen({ port: 0, host: "127.0.0.1" });
  return {
    url,
    close: async () => {
      app.server.closeAllConnections();
      await app.close();
    },
  };
}

async function startKoa(options: UploadGuardOptions): Promise<RunningApp> {
  const app = new Koa();
  // Koa logs a client's broken request (the disconnect test) to stderr; the test asserts it.
  app.silent = true;
  const guard = koaUploadGuard(options);
  app.use(async (ctx, next) => {
    if (ctx.method !== "POST" || ctx.path !== "/upload") return next();
    await guard(ctx, async () => {
      const request = ctx.request as unknown as { body: unknown; files: unknown };
      ctx.body = { fields: request.body, files: request.files };
    });
  });
  return running(app.listen(0, "127.0.0.1"));
}

async function startHono(options: UploadGuardOptions): Promise<RunningApp> {
  const app = new Hono();
  app.post("/upload", honoUploadGuard(options), (c) => {
    const upload = c.get("upload");
    return c.json({ fields: upload.fields, files: upload.files });
  });
  const { server, port } = await new Promise<{ server: ReturnType<typeof serve>; port: number }>(
    (resolve) => {
      const running = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) =>
        resolve({ server: running, port: info.port }),
      );
    },
  );
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        (server as import("node:http").Server).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** Every adapter, by name, started with the guard's options. */
export const adapters: Array<[string, Adapter]> = [
  ["express", startExpress],
  ["fastify", startFastify],
  ["koa", startKoa],
  ["hono", startHono],
];

/** A storage directory for one test, and what is in it (partial files included). */
export function storageDirectory(): { directory: string; entries(): string[]; remove(): void } {
  const directory = mkdtempSync(join(tmpdir(), "engine-upload-test-"));
  return {
    directory,
    entries: () => readdirSync(directory),
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}

/** A guard's options with disk storage in `directory` and the EICAR scanner, plus `more`. */
export function optionsFor(
  directory: string,
  more: Partial<UploadGuardOptions> = {},
): UploadGuardOptions {
  return { scanner: createEicarScanner(), storage: diskStorage({ directory }), ...more };
}

/** One part of a form: a text field, or a file. */
export type FormPart =
  | { field: string; value: string }
  | { field: string; filename: string; type?: string; content: Uint8Array | string };

/** Posts `parts` as multipart/form-data (built by undici's FormData, as browsers do). */
export async function postForm(
  url: string,
  parts: FormPart[],
  path = "/upload",
): Promise<Response> {
  const form = new FormData();
  for (const part of parts) {
    if ("value" in part) form.append(part.field, part.value);
    else
      form.append(
        part.field,
        new Blob([part.content], { type: part.type ?? "application/octet-stream" }),
        part.filename,
      );
  }
  return fetch(`${url}${path}`, { method: "POST", body: form });
}

/** Posts `body` as it is, with `contentType`. */
export function postRaw(
  url: string,
  contentType: string,
  body: string | Uint8Array,
  path = "/upload",
): Promise<Response> {
  return fetch(`${url}${path}`, { method: "POST", headers: { "content-type": contentType }, body });
}

/**
 * Sends the head of a multipart upload of `totalBytes` (declared), the first `sentBytes` of a
 * file, then destroys the socket, as a client that goes away mid-file.
 */
export async function disconnectMidUpload(
  url: string,
  sentBytes: number,
  path = "/upload",
): Promise<void> {
  const boundary = "----engine-test-boundary";
  const head = Buffer.from(
    `--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="big.bin"\r\ncontent-type: application/octet-stream\r\n\r\n`,
  );
  const { hostname, port } = new URL(url);
  const request = httpRequest({
    hostname,
    port,
    path,
    method: "POST",
    headers: {
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": String(head.length + sentBytes * 4),
    },
  });
  request.on("error", () => {});
  request.write(head);
  request.write(Buffer.alloc(sentBytes, 0x61));
  await new Promise((resolve) => setTimeout(resolve, 300));
  request.destroy();
}

/** Polls `check` until it is true or `ms` pass. */
export async function eventually(check: () => boolean, ms = 3_000): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (check()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return check();
}

/** A scanner whose backend is down (every scan fails as clamd's would). */
export function downScanner(): Scanner {
  return defineScanner({
    name: "down",
    async scan() {
      throw new BackendUnavailableError({ message: "test: the backend is down", hint: "none" });
    },
  });
}

/**
 * A scanner that reads its artifact slowly and never answers on its own (only its signal or
 * deadline end it); `aborted` counts the scans that saw their signal fire.
 */
export function hangingScanner(): Scanner & { started: number; aborted: number } {
  const state = { started: 0, aborted: 0 };
  const scanner = defineScanner({
    name: "hanging",
    async scan(artifact, { signal }) {
      state.started += 1;
      signal.addEventListener("abort", () => (state.aborted += 1), { once: true });
      for await (const _ of artifact.stream({ signal }))
        await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
      );
      throw new Error("unreachable");
    },
  });
  return Object.defineProperties(scanner, {
    started: { get: () => state.started },
    aborted: { get: () => state.aborted },
  }) as Scanner & { started: number; aborted: number };
}

/** EICAR with a text name, as a file part. */
export const eicarPart = (field = "file"): FormPart => ({
  field,
  filename: "report.txt",
  type: "text/plain",
  content: eicarBytes(),
});

/** A benign text file part. */
export const textPart = (field = "file", content = "quarterly report\n".repeat(40)): FormPart => ({
  field,
  filename: "report.txt",
  type: "text/plain",
  content,
});
