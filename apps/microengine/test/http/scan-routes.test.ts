import { connect, type Socket } from "node:net";
import { createEicarScanner, eicarBytes } from "@engine/core";
import { afterEach, describe, expect, it } from "vitest";
import { answerOf, bountyBody, engineWith, postBounty, useCollector } from "../harness/engine.js";

const collector = useCollector();
const boundary = "----engine-parts";

/** One multipart part: a file when `filename` is given, else a text field. */
function part(name: string, content: Buffer | string, filename?: string): Buffer {
  const disposition = `form-data; name="${name}"${filename ? `; filename="${filename}"` : ""}`;
  return Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${filename ? "Content-Type: application/octet-stream\r\n" : ""}\r\n`,
    ),
    Buffer.from(content),
    Buffer.from("\r\n"),
  ]);
}

/** A multipart body of `parts`, closed. */
function body(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
}

const headers = { "content-type": `multipart/form-data; boundary=${boundary}` };
const harmless = Buffer.from("just text, nothing to see\n");

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe("POST /scan scans every part of a multipart body or refuses it (second audit, item 1)", () => {
  it("refuses a body whose second file part, or a text field after or before the file, holds EICAR", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    cleanups.push(() => app.close());
    const cases = {
      "a second file part": body(
        part("file", harmless, "a.txt"),
        part("other", eicarBytes(), "b.bin"),
      ),
      "a text field after the file": body(
        part("file", harmless, "a.txt"),
        part("note", eicarBytes()),
      ),
      "a text field before the file": body(
        part("note", eicarBytes()),
        part("file", harmless, "a.txt"),
      ),
      "only a text field": body(part("note", eicarBytes())),
    };
    for (const [what, payload] of Object.entries(cases)) {
      const response = await app.inject({ method: "POST", url: "/scan", payload, headers });
      expect(response.statusCode, what).toBe(400);
      expect(response.json(), what).toMatchObject({
        verdict: "unknown",
        error: { code: "INVALID_OPTIONS", message: expect.stringMatching(/exactly one part/) },
      });
    }
  });

  it("refuses a file part sent quoted-printable or base64 (some parsers decode it, others do not)", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    cleanups.push(() => app.close());
    for (const [encoding, content] of [
      ["quoted-printable", eicarBytes().toString("latin1").replace(/=/g, "=3D")],
      ["base64", eicarBytes().toString("base64")],
      ["Base64", eicarBytes().toString("base64")],
    ]) {
      const payload = Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${content}\r\n--${boundary}--\r\n`,
        ),
      ]);
      const response = await app.inject({ method: "POST", url: "/scan", payload, headers });
      expect(response.statusCode, encoding).toBe(400);
      expect(response.json().error.message, encoding).toMatch(/Content-Transfer-Encoding/);
    }
    const binary = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Transfer-Encoding: binary\r\n\r\n${eicarBytes().toString("latin1")}\r\n--${boundary}--\r\n`,
      "latin1",
    );
    const scanned = await app.inject({ method: "POST", url: "/scan", payload: binary, headers });
    expect(scanned.json().verdict).toBe("malicious");
  });

  it("still scans a body of one file part, whatever it holds", async () => {
    const { app } = await engineWith([createEicarScanner()]);
    cleanups.push(() => app.close());
    const infected = await app.inject({
      method: "POST",
      url: "/scan",
      payload: body(part("file", eicarBytes(), "eicar.com")),
      headers,
    });
    expect(infected.statusCode).toBe(200);
    expect(infected.json().verdict).toBe("malicious");
    const clean = await app.inject({
      method: "POST",
      url: "/scan",
      payload: body(part("file", harmless, "a.txt")),
      headers,
    });
    expect(clean.statusCode).toBe(200);
    expect(clean.json().verdict).toBe("benign");
  });
});

describe("slow uploads to /scan never take the bounties' slots (second audit, item 12)", () => {
  it("answers a bounty while every scan API slot is held by an upload that trickles in", async () => {
    const { app, processor } = await engineWith([createEicarScanner()], {
      BOUNTY_CONCURRENCY: "2",
      BOUNTY_BACKLOG: "0",
      SCAN_API_CONCURRENCY: "2",
      SCAN_API_BACKLOG: "2",
    });
    cleanups.push(
      () => app.close(),
      () => processor.drain(),
    );
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as { port: number };
    // Four uploads that announce a megabyte and send ten bytes: two hold the scan API's slots,
    // two wait for them.
    const uploads: Socket[] = [];
    for (let index = 0; index < 4; index += 1) {
      const socket = connect(port, "127.0.0.1");
      socket.on("error", () => {});
      socket.write(
        "POST /scan HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 1048576\r\n\r\n0123456789",
      );
      uploads.push(socket);
    }
    cleanups.push(async () => {
      for (const socket of uploads) socket.destroy();
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { id, text } = bountyBody(collector, {}, 3000);
    expect((await postBounty(app, text)).statusCode).toBe(202);
    const answer = await answerOf(collector, id, 3500);
    expect(answer.verdict).toBe("malicious");
  });
});

describe("the scan API and its bound", () => {
  it("refuses a scan body over ARTIFACT_MAX_BYTES", async () => {
    const { app } = await engineWith([createEicarScanner()], { ARTIFACT_MAX_BYTES: "1000" });
    const response = await app.inject({
      method: "POST",
      url: "/scan",
      payload: Buffer.alloc(2000),
      headers: { "content-type": "application/octet-stream" },
    });
    expect(response.statusCode).toBe(413);
    await app.close();
  });
});
