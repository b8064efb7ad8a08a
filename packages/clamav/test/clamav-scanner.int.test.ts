import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import {
  ArtifactTooLargeError,
  ArtifactUnavailableError,
  artifactFromBytes,
  artifactFromFile,
  artifactFromStream,
  BackendUnavailableError,
  eicarBytes,
  eicarTestString,
  ScanAbortedError,
} from "@engine/core";
import { cleanBytes } from "@engine/core/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { ClamdClient, createClamavScanner } from "../src/index.js";
import { type ManagedClamd, startManagedClamd } from "../src/managed.js";
import { sampleSignatures, signatureSamples } from "../src/testing.js";

const execFileAsync = promisify(execFile);
let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), "engine-clamav-int-"));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

/** A stream that sends `chunks` chunks of clean text, one every `everyMs` ms. */
function slowStream(chunks: number, everyMs: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent === chunks) {
        this.push(null);
        return;
      }
      sent += 1;
      setTimeout(() => this.push(cleanBytes(`slow chunk ${sent}`, 200)), everyMs);
    },
  });
}

/** Sockets and pipes this process holds open (to prove connections are not leaked). */
function openHandles(): number {
  return process
    .getActiveResourcesInfo()
    .filter((name) => name === "PipeWrap" || name === "TCPSocketWrap").length;
}

describe("the shipped signature database, through a managed clamd", () => {
  let clamd: ManagedClamd;
  beforeAll(async () => {
    clamd = await startManagedClamd();
  });
  afterAll(async () => {
    await clamd[Symbol.asyncDispose]();
  });

  for (const transport of ["socket", "tcp"] as const) {
    it(`detects each signature and passes near misses, over ${transport}, from memory and from files`, async () => {
      const scanner = createClamavScanner({
        ...clamd.clientOptions(transport),
        signaturesVersion: clamd.signaturesVersion,
      });
      const samples = signatureSamples();
      const expected: Record<keyof typeof samples, string> = {
        eicar: "malicious",
        eicarInside: "malicious",
        hdb: "malicious",
        ndb: "malicious",
        ldb: "malicious",
        ldbPartial: "benign",
        hdbNearMiss: "benign",
      };
      for (const [name, bytes] of Object.entries(samples) as [keyof typeof samples, Buffer][]) {
        const path = join(directory, `${transport}-${name}.bin`);
        await writeFile(path, bytes);
        for (const artifact of [artifactFromBytes(bytes), artifactFromFile(path)]) {
          const result = await scanner.scan(artifact);
          expect(result.verdict, `${name} (${artifact.path ?? "bytes"})`).toBe(expected[name]);
          if (name in sampleSignatures) {
            expect(result.metadata.malware_family).toBe(
              sampleSignatures[name as keyof typeof sampleSignatures],
            );
          }
          expect(result.metadata.scanner).toMatchObject({
            vendor_version: expect.stringMatching(/^\d+\.\d+/),
            signatures_version: clamd.signaturesVersion,
          });
          const mode = (result.metadata.clamav as { mode: string }).mode;
          // On the unix socket a file and bytes in memory (a sealed memory file) go by FILDES.
          expect(mode).toBe(transport === "socket" ? "fildes" : "instream");
        }
      }
      await scanner.close?.();
    });
  }

  it("scans local files by FILDES, by SCAN <path>, or streamed, as configured, with the same answers", async () => {
    const path = join(directory, "modes-ndb.bin");
    await writeFile(path, signatureSamples().ndb);
    const modes: Array<[Record<string, boolean>, string]> = [
      [{}, "fildes"],
      [{ passFileDescriptors: false }, "path"],
      [{ scanLocalFiles: false }, "instream"],
    ];
    for (const [options, expected] of modes) {
      const client = new ClamdClient({ ...clamd.clientOptions("socket"), ...options });
      const outcome = await client.scan(artifactFromFile(path));
      expect(outcome.mode).toBe(expected);
      expect(outcome.reply).toMatchObject({ kind: "found", signature: sampleSignatures.ndb });
      await expect(client.scan(artifactFromFile(join(directory, "missing.bin")))).rejects.toThrow(
        /missing\.bin/,
      );
      await client.close();
    }
  });

  it("sends a file by FILDES without looking it up, sized by a walk or not, with the same answers and refusals", async () => {
    const path = join(directory, "sized-ndb.bin");
    const sample = signatureSamples().ndb;
    await writeFile(path, sample);
    const fifo = join(directory, "sized.fifo");
    await execFileAsync("mkfifo", [fifo]);
    const client = new ClamdClient(clamd.clientOptions("socket"));
    try {
      const outcome = await client.scan(artifactFromFile(path, { size: sample.length }));
      expect(outcome.mode).toBe("fildes");
      expect(outcome.reply).toMatchObject({ kind: "found", signature: sampleSignatures.ndb });
      // A directory, a FIFO (never opened blocking) and a missing file: the artifact could not be
      // read, as when its size was looked up first; sized (a walk's) or not (a caller's path).
      for (const target of [directory, fifo, join(directory, "gone.bin")]) {
        for (const options of [{ size: 10 }, {}]) {
          const refused = await client
            .scan(artifactFromFile(target, options))
            .catch((error: unknown) => error);
          expect(ArtifactUnavailableError.isInstance(refused)).toBe(true);
        }
      }
      // A file that says its size is 0 though it has content (procfs): clamd would read nothing
      // through a descriptor or a path, so it is streamed, and what it holds is found.
      const holder = spawn(
        process.execPath,
        ["-e", "setTimeout(() => {}, 30000)", "--", eicarTestString],
        {
          stdio: "ignore",
        },
      );
      try {
        await vi.waitFor(() => expect(holder.pid).toBeDefined());
        const cmdline = `/proc/${holder.pid}/cmdline`;
        await vi.waitFor(async () => expect(await readFile(cmdline, "latin1")).toContain("EICAR"));
        // By FILDES, or by SCAN <path> without the addon (clamd would open it itself).
        const byPath = new ClamdClient({
          ...clamd.clientOptions("socket"),
          passFileDescriptors: false,
        });
        try {
          for (const scanner of [client, byPath])
            for (const options of [{ size: 0 }, {}]) {
              const found = await scanner.scan(artifactFromFile(cmdline, options));
              expect([found.mode, found.reply]).toMatchObject([
                "instream",
                { kind: "found", signature: sampleSignatures.eicarInside },
              ]);
            }
        } finally {
          await byPath.close();
        }
      } finally {
        holder.kill();
      }
      // A caller's path without a size goes by FILDES too (no stat first), with the same answer.
      // clamd names a passed file by its own descriptor number ("fd[11]"), which depends on what
      // else clamd has open at that moment, so the subject is compared by its shape only.
      const unsized = await client.scan(artifactFromFile(path));
      expect(unsized.mode).toBe(outcome.mode);
      expect({ ...unsized.reply, subject: "fd" }).toEqual({ ...outcome.reply, subject: "fd" });
      expect(unsized.reply.subject).toMatch(/^fd\[\d+\]$/);
    } finally {
      await client.close();
    }
    // A file that grew past maxStreamBytes after the walk saw it: refused by its descriptor's
    // size, before it is passed.
    const grown = join(directory, "grown.bin");
    await writeFile(grown, Buffer.alloc(4096, 0x41));
    const limited = new ClamdClient({ ...clamd.clientOptions("socket"), maxStreamBytes: 1024 });
    try {
      for (const options of [{ size: 10 }, {}]) {
        const refused = await limited
          .scan(artifactFromFile(grown, options))
          .catch((error: unknown) => error);
        expect(ArtifactTooLargeError.isInstance(refused)).toBe(true);
        expect((refused as Error).message).toMatch(/4096/);
      }
      expect((await limited.scan(artifactFromFile(path, { size: sample.length }))).mode).toBe(
        "fildes",
      );
    } finally {
      await limited.close();
    }
  });

  it("passes bytes held in memory as a sealed memory file by FILDES, with the answers INSTREAM gives", async () => {
    const samples = signatureSamples();
    const contents = [
      eicarBytes(),
      samples.ndb,
      cleanBytes("a clean upload", 4096),
      Buffer.alloc(0),
    ];
    const byMemory = new ClamdClient(clamd.clientOptions("socket"));
    const byStream = new ClamdClient({ ...clamd.clientOptions("socket"), memoryFileMaxBytes: 0 });
    const small = new ClamdClient({ ...clamd.clientOptions("socket"), memoryFileMaxBytes: 16 });
    try {
      for (const content of contents) {
        const passed = await byMemory.scan(artifactFromBytes(content));
        const streamed = await byStream.scan(artifactFromBytes(content));
        expect([passed.mode, streamed.mode]).toEqual(["fildes", "instream"]);
        expect(passed.reply.kind).toBe(streamed.reply.kind);
        expect((passed.reply as { signature?: string }).signature).toBe(
          (streamed.reply as { signature?: string }).signature,
        );
      }
      expect((await byMemory.scan(artifactFromBytes(eicarBytes()))).reply.kind).toBe("found");
      // Over memoryFileMaxBytes, and a stream (read once: it could not be streamed after), go by INSTREAM.
      expect((await small.scan(artifactFromBytes(eicarBytes()))).mode).toBe("instream");
      const once = await byMemory.scan(artifactFromStream(Readable.from([eicarBytes()])));
      expect([once.mode, once.reply.kind]).toEqual(["instream", "found"]);
    } finally {
      await Promise.all([byMemory.close(), byStream.close(), small.close()]);
    }
  });

  it("verifies the alert settings once per kept session for many FILDES scans, not once per scan", async () => {
    const scanner = createClamavScanner({ ...clamd.clientOptions("socket"), verifyAlerts: true });
    try {
      const files: string[] = [];
      for (let index = 0; index < 20; index += 1) {
        const path = join(directory, `steady-${index}.txt`);
        await writeFile(path, `clean file ${index}`);
        files.push(path);
      }
      const first = await scanner.scan(artifactFromFile(files[0] as string));
      expect(first.verdict).toBe("benign");
      expect(first.metadata.clamav).toMatchObject({ mode: "fildes" });
      const client = scanner.client as ClamdClient;
      const generation = client.daemonGeneration;
      const scanAll = () => Promise.all(files.map((path) => scanner.scan(artifactFromFile(path))));
      const results = await scanAll();
      expect(results.every((result) => result.verdict === "benign")).toBe(true);
      // Every one by FILDES: none fell back to streaming.
      expect(results.map((result) => (result.metadata.clamav as { mode?: string }).mode)).toEqual(
        files.map(() => "fildes"),
      );
      // FILDES goes on kept IDSESSION connections: a generation per session opened (at most
      // maxConnections, 4), none per scan. Before: a connection and a generation per FILDES call,
      // and each clean answer waited for a probe.
      const afterFirstBatch = client.daemonGeneration;
      expect(afterFirstBatch - generation).toBeLessThanOrEqual(client.options.maxConnections - 1);
      const again = await scanAll();
      expect(again.every((result) => result.verdict === "benign")).toBe(true);
      expect(client.daemonGeneration).toBe(afterFirstBatch);
      expect(scanner.alertStatus()).toEqual({ state: "verified", problems: [] });
    } finally {
      await scanner.close?.();
    }
  });

  it("parses VERSION, VERSIONCOMMANDS and STATS of the real clamd", async () => {
    const client = new ClamdClient(clamd.clientOptions());
    const version = await client.version();
    expect(version.engineVersion).toMatch(/^\d+\.\d+\.\d+/);
    expect(version.databaseVersion).toBeUndefined(); // custom signatures only: no database part
    expect(await client.versionCommands()).toEqual(
      expect.arrayContaining(["INSTREAM", "IDSESSION", "FILDES", "PING"]),
    );
    expect((await client.stats()).threads?.max).toBeGreaterThan(0);
    await client.reload();
    await client.ping();
  });

  it("aborts a real scan mid-stream and keeps working", async () => {
    const scanner = createClamavScanner(clamd.clientOptions());
    const controller = new AbortController();
    const scan = scanner.scan(artifactFromStream(slowStream(1000, 10)), {
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 100);
    await expect(scan).rejects.toBeInstanceOf(ScanAbortedError);
    expect((await scanner.scan(artifactFromBytes(signatureSamples().ndb))).verdict).toBe(
      "malicious",
    );
    await scanner.close?.();
  });
});

describe("clamd faults", () => {
  let clamd: ManagedClamd | undefined;
  afterEach(async () => {
    await clamd?.[Symbol.asyncDispose]();
    clamd = undefined;
  });

  it("fails fast with BackendUnavailableError when clamd is not running", async () => {
    clamd = await startManagedClamd();
    const scanner = createClamavScanner(clamd.clientOptions());
    await clamd.stop();
    const started = Date.now();
    await expect(scanner.scan(artifactFromBytes("x"))).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("answers a typed error, promptly, when clamd is killed mid-scan", async () => {
    clamd = await startManagedClamd();
    const scanner = createClamavScanner(clamd.clientOptions("tcp"));
    await scanner.setup?.();
    const killedAt = { time: 0 };
    const failure = scanner.scan(artifactFromStream(slowStream(1000, 10))).then(
      () => undefined,
      (error: unknown) => ({ error, after: Date.now() - killedAt.time }),
    );
    await new Promise((resolve) => setTimeout(resolve, 150));
    killedAt.time = Date.now();
    await clamd.kill();
    const outcome = await failure;
    expect(BackendUnavailableError.isInstance(outcome?.error)).toBe(true);
    expect(outcome?.after).toBeLessThan(2000);
  });

  it("answers a typed error when clamd dies after the upload, while scanning", async () => {
    clamd = await startManagedClamd();
    const client = new ClamdClient(clamd.clientOptions("tcp"));
    const big = Buffer.alloc(60 * 1024 * 1024, 0x61);
    const failure = client.scan(artifactFromBytes(big)).then(
      () => undefined,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    await clamd.kill();
    expect(BackendUnavailableError.isInstance(await failure)).toBe(true);
  });

  it("reconnects transparently when clamd was restarted between scans", async () => {
    clamd = await startManagedClamd();
    for (const transport of ["socket", "tcp"] as const) {
      const scanner = createClamavScanner(clamd.clientOptions(transport));
      expect((await scanner.scan(artifactFromBytes(signatureSamples().ndb))).verdict).toBe(
        "malicious",
      );
      await clamd.restart();
      expect((await scanner.scan(artifactFromBytes(signatureSamples().ndb))).verdict).toBe(
        "malicious",
      );
      expect((await scanner.scan(artifactFromBytes("clean after restart"))).verdict).toBe("benign");
      await scanner.close?.();
    }
  });

  it("turns clamd's StreamMaxLength cut into ArtifactTooLargeError, with no hang and no leaked connection", async () => {
    clamd = await startManagedClamd({ config: { StreamMaxLength: "1M" } });
    const client = new ClamdClient({ ...clamd.clientOptions("tcp"), maxConnections: 2 });
    await client.ping();
    const before = openHandles();
    const twoMegabytes = Buffer.alloc(2 * 1024 * 1024, 0x62);
    // size known (over clamd's limit, under ours), unsized stream, and a file
    const path = join(directory, "two-megabytes.bin");
    await writeFile(path, twoMegabytes);
    for (const artifact of [
      artifactFromBytes(twoMegabytes),
      artifactFromStream(
        Readable.from([twoMegabytes.subarray(0, 1024 * 1024), twoMegabytes.subarray(1024 * 1024)]),
      ),
      artifactFromFile(path),
    ]) {
      const started = Date.now();
      await expect(client.scan(artifact)).rejects.toBeInstanceOf(ArtifactTooLargeError);
      expect(Date.now() - started).toBeLessThan(5000);
    }
    expect((await client.scan(artifactFromBytes(signatureSamples().ndb))).reply.kind).toBe("found");
    await client.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(openHandles()).toBeLessThanOrEqual(before);
  });

  it("refuses, before sending, an artifact over maxStreamBytes, and never truncates", async () => {
    clamd = await startManagedClamd();
    const client = new ClamdClient({ ...clamd.clientOptions(), maxStreamBytes: 64 * 1024 });
    const overLimit = artifactFromStream(
      Readable.from([Buffer.alloc(40 * 1024), Buffer.alloc(40 * 1024)]),
    );
    await expect(client.scan(overLimit)).rejects.toThrow(
      /over clamd's StreamMaxLength|over maxStreamBytes/,
    );
    await expect(
      client.scan(artifactFromBytes(Buffer.alloc(64 * 1024 + 1))),
    ).rejects.toBeInstanceOf(ArtifactTooLargeError);
  });
});
