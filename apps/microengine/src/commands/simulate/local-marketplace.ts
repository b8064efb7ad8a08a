import { createServer, type IncomingMessage } from "node:http";

/** One artifact the simulator offers, and the verdict it expects when it knows one. */
export interface Offered {
  name: string;
  bytes: Buffer;
  expected?: "malicious" | "benign";
}

/** An answer the engine posted to the marketplace, and when it arrived (ms since the epoch). */
export interface ReceivedAnswer {
  body: string;
  at: number;
}

/**
 * The simulator's marketplace side, on loopback: `GET /artifacts/<index>` serves an offered
 * artifact, `POST /responses/<id>/<phase>` receives an answer (the first one for a key counts).
 */
export interface LocalMarketplace {
  /** `http://127.0.0.1:<port>`. */
  base: string;
  /**
   * Resolves when the answer for `key` (`<id>:<phase>`) arrives, or after `timeoutMs`. Call it
   * before posting the bounty.
   */
  answerArrival(key: string, timeoutMs: number): Promise<void>;
  /** The answer received for `key`, if any. */
  answer(key: string): ReceivedAnswer | undefined;
  close(): Promise<void>;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

/** Starts the marketplace on a free loopback port, serving `offered` by index. */
export async function startLocalMarketplace(
  offered: readonly Offered[],
): Promise<LocalMarketplace> {
  const answers = new Map<string, ReceivedAnswer>();
  const waiters = new Map<string, () => void>();
  const server = createServer(async (incoming, outgoing) => {
    const url = new URL(incoming.url ?? "/", "http://localhost");
    const artifact = /^\/artifacts\/(\d+)$/.exec(url.pathname);
    if (incoming.method === "GET" && artifact?.[1]) {
      const item = offered[Number(artifact[1])];
      if (!item) return void outgoing.writeHead(404).end();
      return void outgoing
        .writeHead(200, {
          "content-type": "application/octet-stream",
          "content-length": item.bytes.length,
        })
        .end(item.bytes);
    }
    const response = /^\/responses\/([^/]+)\/(assertion|arbitration)$/.exec(url.pathname);
    if (incoming.method === "POST" && response) {
      const key = `${response[1]}:${response[2]}`;
      const body = (await readBody(incoming)).toString("utf8");
      if (!answers.has(key)) answers.set(key, { body, at: Date.now() });
      waiters.get(key)?.();
      return void outgoing
        .writeHead(200, { "content-type": "application/json" })
        .end('{"status":"OK"}');
    }
    outgoing.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  return {
    base: `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`,
    answerArrival: (key, timeoutMs) =>
      new Promise<void>((resolve) => {
        waiters.set(key, resolve);
        setTimeout(resolve, timeoutMs).unref();
      }),
    answer: (key) => answers.get(key),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
