import { createHash, randomInt, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage } from "node:http";
import { basename } from "node:path";
import { eicarBytes } from "@engine/core";
import { request } from "undici";
import { defaultBidRange } from "../protocol/bid.js";
import { signBody } from "../protocol/webhook-signature.js";

/** One artifact the simulator offers, and the verdict it expects when it knows one. */
interface Offered {
  name: string;
  bytes: Buffer;
  expected?: "malicious" | "benign";
}

/** What the simulator saw for one bounty. */
export interface SimulatedBounty {
  artifact: string;
  phase: "assertion" | "arbitration";
  id: string;
  status: "ok" | "failed";
  problems: string[];
  verdict?: string;
  bid?: string;
  latencyMs?: number;
}

/** Options of {@link simulate}. */
export interface SimulateOptions {
  /** The engine's webhook URL, e.g. http://127.0.0.1:8080/. */
  engineUrl: string;
  /** The shared WEBHOOK_SECRET; without it bounties go unsigned. */
  secret?: string | undefined;
  /** Extra files to offer (no expected verdict). */
  paths?: string[];
  /** Seconds each bounty has before it expires. Default 30. */
  expirationSeconds?: number;
  /** Serve artifacts over loopback HTTP instead of data: URIs (the engine must allow 127.0.0.1). */
  serveHttp?: boolean;
  /** Bid range of the rules. Default: the marketplace's. */
  minBid?: bigint;
  maxBid?: bigint;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks)));
    request.on("error", reject);
  });
}

/**
 * A local marketplace (the tutorials' "test ambassador"): serves artifacts, posts signed
 * bounties to an engine, receives the answers on its own `response_url`, and checks them:
 * the answer's shape, an integer bid within the rules (0 for unknown and suspicious), the
 * expected verdicts for EICAR (malicious) and a benign file, a vote in the arbitration phase,
 * and that each answer arrived before expiration.
 */
export async function simulate(options: SimulateOptions): Promise<SimulatedBounty[]> {
  const minBid = options.minBid ?? defaultBidRange.min;
  const maxBid = options.maxBid ?? defaultBidRange.max;
  const expirationMs = (options.expirationSeconds ?? 30) * 1000;
  const offered: Offered[] = [
    { name: "eicar.com", bytes: eicarBytes(), expected: "malicious" },
    {
      name: "benign.txt",
      bytes: Buffer.from("A benign text file from the microengine simulator.\n"),
      expected: "benign",
    },
  ];
  for (const path of options.paths ?? [])
    offered.push({ name: basename(path), bytes: await readFile(path) });

  const answers = new Map<string, { body: string; at: number }>();
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
  const base = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;

  try {
    const jobs = offered.flatMap((item, index) => {
      const phases: Array<"assertion" | "arbitration"> =
        item.expected === "malicious" ? ["assertion", "arbitration"] : ["assertion"];
      return phases.map((phase) => ({ item, index, phase }));
    });
    const ids = new Map<number, string>();
    const results = await Promise.all(
      jobs.map(async ({ item, index, phase }): Promise<SimulatedBounty> => {
        const id = ids.get(index) ?? String(randomInt(1, 2 ** 47));
        ids.set(index, id);
        const key = `${id}:${phase}`;
        const sentAt = Date.now();
        const expiresAt = sentAt + expirationMs;
        const uri = options.serveHttp
          ? `${base}/artifacts/${index}`
          : `data:application/octet-stream;base64,${item.bytes.toString("base64")}`;
        const body = `{"id":${id},"artifact_type":"FILE","artifact_uri":${JSON.stringify(uri)},"expiration":${JSON.stringify(new Date(expiresAt).toISOString())},"response_url":${JSON.stringify(`${base}/responses/${id}/${phase}`)},"sha256":"${createHash("sha256").update(item.bytes).digest("hex")}","mimetype":"application/octet-stream","phase":"${phase}","metadata":{"filename":${JSON.stringify(item.name)}},"rules":{"min_allowed_bid":${minBid},"max_allowed_bid":${maxBid}},"extra_field_to_ignore":true}`;
        const problems: string[] = [];
        const arrived = new Promise<void>((resolve) => {
          waiters.set(key, resolve);
          setTimeout(resolve, expirationMs + 1000).unref();
        });
        const headers: Record<string, string> = {
          "content-type": "application/json",
          "x-polyswarm-event": "bounty",
          "x-polyswarm-delivery": randomUUID(),
        };
        if (options.secret) headers["x-polyswarm-signature"] = signBody(options.secret, body);
        try {
          const posted = await request(options.engineUrl, { method: "POST", headers, body });
          const text = await posted.body.text();
          if (posted.statusCode !== 202)
            problems.push(
              `the engine answered the bounty with HTTP ${posted.statusCode}: ${text}${
                /response_url: the host is a private/.test(text)
                  ? " (this simulator answers on loopback: start the engine with ARTIFACT_ALLOW_PRIVATE_ADDRESSES=true to try it locally)"
                  : ""
              }`,
            );
        } catch (error) {
          problems.push(`cannot post to ${options.engineUrl}: ${(error as Error).message}`);
        }
        if (problems.length === 0) await arrived;
        const answer = answers.get(key);
        const outcome: SimulatedBounty = { artifact: item.name, phase, id, status: "ok", problems };
        if (problems.length === 0 && !answer) problems.push("no answer before expiration");
        if (answer) {
          outcome.latencyMs = answer.at - sentAt;
          if (answer.at > expiresAt)
            problems.push(`answered ${answer.at - expiresAt} ms after expiration`);
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(answer.body) as Record<string, unknown>;
          } catch {
            problems.push("the answer is not JSON");
          }
          const verdict = parsed.verdict;
          outcome.verdict = String(verdict);
          if (!["malicious", "benign", "suspicious", "unknown"].includes(String(verdict)))
            problems.push(`invalid verdict ${JSON.stringify(verdict)}`);
          if (
            typeof (parsed.metadata as Record<string, unknown> | undefined)?.malware_family !==
            "string"
          )
            problems.push("metadata.malware_family is missing");
          if (item.expected && verdict !== item.expected)
            problems.push(`expected ${item.expected}, got ${String(verdict)}`);
          if (phase === "assertion") {
            const literal = /"bid"\s*:\s*(-?[0-9][0-9.eE+-]*)\s*[,}]/.exec(answer.body)?.[1];
            if (!literal || !/^\d+$/.test(literal))
              problems.push(`the bid is not a JSON integer: ${literal ?? "missing"}`);
            else {
              const bid = BigInt(literal);
              outcome.bid = literal;
              const zero = verdict === "unknown" || verdict === "suspicious";
              if (zero && bid !== 0n)
                problems.push(`a ${String(verdict)} answer must bid 0, bid ${literal}`);
              if (!zero && (bid < minBid || bid > maxBid))
                problems.push(`bid ${literal} outside [${minBid}, ${maxBid}]`);
            }
          } else if ("bid" in parsed) {
            problems.push("an arbitration vote must not carry a bid");
          }
        }
        outcome.status = problems.length === 0 ? "ok" : "failed";
        return outcome;
      }),
    );
    return results;
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
