// What the engine benchmarks share: `serve` in its own process, a marketplace on loopback
// (artifacts served at /a/<index>, answers collected at /r/<id>) and signed webhook posts.
import { spawn } from "node:child_process";
import { createHmac, randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Starts `microengine serve` as operators run it, in its own process (its RSS is its own),
 * allowed to fetch from and answer to loopback, and resolves once `/readyz` answers 200.
 * @returns {Promise<{ engine: import("node:child_process").ChildProcess, url: string }>}
 */
export async function startServe({
  secret,
  environment = {},
  nodeArguments = [],
  stdout = "ignore",
}) {
  const port = 20_000 + randomInt(20_000);
  const engine = spawn(
    process.execPath,
    [...nodeArguments, join(import.meta.dirname, "../bin/microengine.cjs"), "serve"],
    {
      env: {
        ...process.env,
        WEBHOOK_SECRET: secret,
        PORT: String(port),
        ARTIFACT_ALLOWED_HOSTS: "127.0.0.1",
        ARTIFACT_ALLOW_PRIVATE_ADDRESSES: "true",
        LOG_LEVEL: "error",
        ...environment,
      },
      stdio: ["ignore", stdout, "inherit"],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt += 1) {
    const ready = await fetch(`${url}/readyz`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (attempt > 600) {
      engine.kill("SIGKILL");
      throw new Error("the engine did not become ready");
    }
    await sleep(100);
  }
  return { engine, url };
}

/**
 * Starts the marketplace. `artifacts[index].bytes` is served at `/a/<index>` (after `delayMs`);
 * each POST to `/r/<id>` is kept in `answers.get(id)` as `{ at: clock(), body }`, and passed to
 * `onAnswer(id, answer)` when given.
 * @returns {Promise<{ base: string, answers: Map<string, Array<{ at: number, body: string }>>, close(): void }>}
 */
export async function startMarketplace({
  artifacts,
  delayMs = 0,
  clock = () => performance.now(),
  onAnswer,
}) {
  const answers = new Map();
  const server = createServer((incoming, outgoing) => {
    const artifact = /^\/a\/(\d+)$/.exec(incoming.url ?? "");
    if (artifact) {
      const item = artifacts[Number(artifact[1])];
      const send = () => {
        if (!outgoing.destroyed)
          outgoing.writeHead(200, { "content-length": item.bytes.length }).end(item.bytes);
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
      return;
    }
    const answer = /^\/r\/(\d+)$/.exec(incoming.url ?? "");
    if (!answer) return void outgoing.writeHead(404).end();
    const chunks = [];
    incoming.on("data", (chunk) => chunks.push(chunk));
    incoming.on("end", () => {
      const list = answers.get(answer[1]) ?? [];
      const entry = { at: clock(), body: Buffer.concat(chunks).toString() };
      list.push(entry);
      answers.set(answer[1], list);
      onAnswer?.(answer[1], entry);
      outgoing.writeHead(200).end("{}");
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    answers,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/**
 * Posts a signed bounty webhook (`body`, a JSON string) to `url` through `agent`; resolves
 * with the HTTP status, or the socket error's code (never rejects).
 */
export function postSignedBounty({ agent, url, secret, body }) {
  return new Promise((resolve) => {
    const outgoing = request(
      url,
      {
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          "x-polyswarm-event": "bounty",
          "x-polyswarm-signature": createHmac("sha256", secret).update(body).digest("hex"),
        },
      },
      (response) => response.resume().on("end", () => resolve(response.statusCode)),
    );
    outgoing.on("error", (error) => resolve(error.code ?? "error"));
    outgoing.end(body);
  });
}

/** The nearest-rank percentile (`share` 0..1) of ascending `sorted` values; NaN when there are none. */
export function percentile(sorted, share) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * share))] ?? Number.NaN;
}

/** A process's resident memory now and at its peak, in kB, from /proc. */
export function memoryOf(pid) {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(text)?.[1] ?? 0);
  return { rss: field("VmRSS"), peak: field("VmHWM") };
}
