import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { Readable } from "node:stream";
import {
  ArtifactTooLargeError,
  artifactFromBytes,
  artifactFromStream,
  BackendUnavailableError,
  createEicarScanner,
  eicarBytes,
  InvalidOptionsError,
  type Scanner,
  ScanTimeoutError,
  toLegacyTuple,
} from "@engine/core";
import { describeScanner } from "@engine/core/testing";
import { describe, expect, it } from "vitest";
import { createMultiScanner, majority, quorum, weighted } from "../src/index.js";
import { answering, hanging, invalid, result, stuckInSetup, throwing } from "./fake-scanners.js";

const backendsOf = (scan: { metadata: Record<string, unknown> }) =>
  scan.metadata.backends as Array<{
    name: string;
    verdict: string;
    error_code?: string;
    malware_family: string;
    duration_ms: number;
  }>;

describeScanner(
  "multi (eicar + eicar)",
  () => createMultiScanner([createEicarScanner(), createEicarScanner({ name: "eicar-2" })]),
  {
    largeArtifactBytes: 8 * 1024 * 1024,
    capabilities: {
      createUnreachableScanner: () => createMultiScanner([throwing("down-1"), throwing("down-2")]),
    },
  },
);

describeScanner(
  "multi of a multi (they nest)",
  () =>
    createMultiScanner(
      [createMultiScanner([createEicarScanner()], { name: "inner" }), createEicarScanner()],
      { name: "outer" },
    ),
  {
    largeArtifactBytes: 4 * 1024 * 1024,
    capabilities: { createUnreachableScanner: () => createMultiScanner([throwing("down")]) },
  },
);

describe("fail closed", () => {
  it("answers unknown, naming the failed backend, when the others found nothing", async () => {
    const scan = await createMultiScanner([
      answering("clean", result("benign")),
      throwing("clamav"),
    ]).scan(artifactFromBytes("x"));
    expect(scan.verdict).toBe("unknown");
    expect(scan.confidence).toBe(0);
    expect(scan.metadata.comments?.[0]).toMatch(/clamav failed \(BACKEND_UNAVAILABLE\)/);
    expect(
      backendsOf(scan).map((backend) => [backend.name, backend.verdict, backend.error_code]),
    ).toEqual([
      ["clean", "benign", undefined],
      ["clamav", "unknown", "BACKEND_UNAVAILABLE"],
    ]);
  });

  it("never answers benign over a backend that could not look inside, under every policy", async () => {
    const encrypted = {
      verdict: "unknown" as const,
      confidence: 0,
      metadata: {
        malware_family: "",
        comments: ["SKIPPED:ENCRYPTED", "clamd: Heuristics.Encrypted.Zip"],
      },
    };
    for (const policy of ["any", "majority", quorum(1), weighted({ clamav: 2 }, 2)] as const) {
      const scan = await createMultiScanner(
        [answering("yara", result("benign")), answering("clamav", encrypted)],
        { policy },
      ).scan(artifactFromBytes("x"));
      expect(scan.verdict).toBe("unknown");
      expect(scan.confidence).toBe(0);
      expect(scan.metadata.comments).toEqual([
        "SKIPPED:ENCRYPTED",
        "INCOMPLETE: clamav could not look inside (SKIPPED:ENCRYPTED); no other backend detected anything",
      ]);
      expect(backendsOf(scan)[1]).toMatchObject({
        name: "clamav",
        verdict: "unknown",
        inconclusive: true,
        reason: "SKIPPED:ENCRYPTED",
      });
      expect(backendsOf(scan)[0]).not.toHaveProperty("inconclusive");
    }
    // A detection still wins under any.
    const detected = await createMultiScanner([
      answering("yara", result("malicious", 0.9, "Zip.Dropper")),
      answering("clamav", encrypted),
    ]).scan(artifactFromBytes("x"));
    expect(detected).toMatchObject({ verdict: "malicious", confidence: 0.9 });
    // benign only when every backend looked and said benign.
    const clean = await createMultiScanner([
      answering("yara", result("benign")),
      answering("clamav", result("benign")),
    ]).scan(artifactFromBytes("x"));
    expect(clean.verdict).toBe("benign");
    // The documented opt-out ignores unknown answers, never failures.
    const optedOut = createMultiScanner(
      [answering("yara", result("benign")), answering("clamav", encrypted)],
      { benignWhenInconclusive: true },
    );
    expect((await optedOut.scan(artifactFromBytes("x"))).verdict).toBe("benign");
    const stillFailed = createMultiScanner(
      [answering("yara", result("benign")), throwing("clamav")],
      { benignWhenInconclusive: true },
    );
    expect((await stillFailed.scan(artifactFromBytes("x"))).verdict).toBe("unknown");
  });

  it("puts the SKIPPED code first when the policy itself answers unknown (every backend blind)", async () => {
    const blind = (code: string) => ({
      verdict: "unknown" as const,
      confidence: 0,
      metadata: { malware_family: "", comments: [code, "a.zip!/x: the entry is encrypted"] },
    });
    for (const policy of ["any", "majority"] as const) {
      const scan = await createMultiScanner(
        [
          answering("yara", blind("SKIPPED:ENCRYPTED")),
          answering("clamav", blind("SKIPPED:LIMITS")),
        ],
        { policy },
      ).scan(artifactFromBytes("x"));
      expect(scan.verdict).toBe("unknown");
      expect(scan.metadata.comments).toEqual([
        "SKIPPED:ENCRYPTED",
        "INCOMPLETE: yara could not look inside (SKIPPED:ENCRYPTED), clamav could not look inside (SKIPPED:LIMITS)",
      ]);
    }
  });

  it("hands full errors to onBackendError and keeps only the public reason in the answer", async () => {
    const seen: Array<[string, string]> = [];
    const scan = await createMultiScanner(
      [
        answering("yara", result("benign")),
        throwing(
          "clamav",
          new BackendUnavailableError({
            message: "@engine/clamav: cannot connect to clamd at unix:/tmp/secret-dir/clamd.sock",
          }),
        ),
      ],
      {
        onBackendError: (name, error) => {
          seen.push([name, error.message]);
          throw new Error("a broken logger changes nothing");
        },
      },
    ).scan(artifactFromBytes("x"));
    expect(seen).toEqual([
      ["clamav", "@engine/clamav: cannot connect to clamd at unix:/tmp/secret-dir/clamd.sock"],
    ]);
    expect(scan.verdict).toBe("unknown");
    expect(backendsOf(scan)[1]).toMatchObject({
      error_code: "BACKEND_UNAVAILABLE",
      error: "a scanning backend is unavailable",
    });
    expect(JSON.stringify(scan)).not.toMatch(/secret-dir|clamd\.sock/);
  });

  it("keeps a detection when another backend failed", async () => {
    const scan = await createMultiScanner([
      answering("yara", result("malicious", 0.8, "Emotet")),
      throwing("clamav"),
    ]).scan(artifactFromBytes("x"));
    expect(scan).toMatchObject({
      verdict: "malicious",
      confidence: 0.8,
      metadata: { malware_family: "Emotet" },
    });
  });

  it("does not let any policy turn a failure into benign", async () => {
    const scan = await createMultiScanner(
      [answering("a", result("benign")), answering("b", result("benign")), throwing("c")],
      {
        policy: majority,
      },
    ).scan(artifactFromBytes("x"));
    expect(scan.verdict).toBe("unknown");
  });

  it("throws a typed error when every backend failed", async () => {
    await expect(
      createMultiScanner([throwing("a"), throwing("b")]).scan(artifactFromBytes("x")),
    ).rejects.toBeInstanceOf(BackendUnavailableError);
    const tooLarge = new ArtifactTooLargeError({ message: "big" });
    await expect(
      createMultiScanner([throwing("a", tooLarge), throwing("b", tooLarge)]).scan(
        artifactFromBytes("x"),
      ),
    ).rejects.toBe(tooLarge);
    await expect(
      createMultiScanner([throwing("a"), throwing("b", tooLarge)]).scan(artifactFromBytes("x")),
    ).rejects.toThrow(/every backend failed: a \(BACKEND_UNAVAILABLE.*b \(ARTIFACT_TOO_LARGE/);
  });

  it("treats an invalid result as that backend's error", async () => {
    const scan = await createMultiScanner([
      invalid("broken"),
      answering("yara", result("malicious")),
    ]).scan(artifactFromBytes("x"));
    expect(scan.verdict).toBe("malicious");
    expect(backendsOf(scan)[0]).toMatchObject({ name: "broken", error_code: "INVALID_RESULT" });
  });

  it("rejects a custom policy's invalid answer with a typed error", async () => {
    const scanner = createMultiScanner([answering("a", result("benign"))], {
      policy: () => ({ verdict: "clean" as never, confidence: 2 }),
    });
    await expect(scanner.scan(artifactFromBytes("x"))).rejects.toThrow(
      /policy returned an invalid answer/,
    );
  });
});

describe("time", () => {
  it("answers by the caller's deadline even when a backend hangs and ignores its signal", async () => {
    const scanner = createMultiScanner([
      hanging("stuck"),
      answering("yara", result("malicious", 1, "Fam"), 10),
    ]);
    const started = Date.now();
    const scan = await scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 300 });
    const elapsed = Date.now() - started;
    expect(elapsed).toBeLessThan(300);
    expect(scan.verdict).toBe("malicious");
    expect(backendsOf(scan)[0]).toMatchObject({ name: "stuck", error_code: "SCAN_TIMEOUT" });
  });

  it("gives each backend its own budget inside the deadline", async () => {
    const scanner = createMultiScanner(
      [answering("slow", result("malicious"), 5_000), answering("fast", result("benign"), 5)],
      {
        backendTimeoutMs: { slow: 100 },
      },
    );
    const scan = await scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 10_000 });
    expect(scan.verdict).toBe("unknown"); // the slow one failed and the fast one found nothing
    expect(backendsOf(scan)[0]).toMatchObject({ name: "slow", error_code: "SCAN_TIMEOUT" });
    expect(backendsOf(scan)[0]?.duration_ms).toBeLessThan(1000);
  });

  it("times out as a whole with ScanTimeoutError when every backend ran out of time", async () => {
    const scanner = createMultiScanner([hanging("a"), hanging("b")]);
    await expect(
      scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 100 }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
  });

  it("runs backends concurrently", async () => {
    let running = 0;
    let most = 0;
    const backends = Array.from({ length: 20 }, (_, index) =>
      answering(`b${index}`, async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 30));
        running -= 1;
        return result("benign");
      }),
    );
    const scan = await createMultiScanner(backends).scan(artifactFromBytes("x"));
    expect(scan.verdict).toBe("benign");
    expect(most).toBe(20);
  });
});

describe("a backend whose setup hangs (clamd stopped before the first scan)", () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  /** "settled" when `promise` settles within `ms`, "pending" otherwise. */
  const settlesWithin = (promise: Promise<unknown> | undefined, ms: number) =>
    Promise.race([
      Promise.resolve(promise).then(
        () => "settled",
        () => "settled",
      ),
      sleep(ms).then(() => "pending"),
    ]);
  const stuckEntry = (scan: { metadata: Record<string, unknown> }) =>
    backendsOf(scan).find((backend) => backend.name === "stuck");

  for (const contract of [false, true]) {
    const kind = contract ? "defineScanner" : "plain-object";

    it(`answers by a ${kind} backend's budget with the other's detection, counting it as failed`, async () => {
      const scanner = createMultiScanner(
        [
          stuckInSetup("stuck", result("benign"), { contract }),
          answering("yara", result("malicious", 0.9, "Fam")),
        ],
        { backendTimeoutMs: { stuck: 200 } },
      );
      const started = Date.now();
      const scan = await scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 600 });
      expect(Date.now() - started).toBeLessThan(450);
      expect(scan).toMatchObject({ verdict: "malicious", metadata: { malware_family: "Fam" } });
      expect(stuckEntry(scan)).toMatchObject({
        verdict: "unknown",
        error_code: "SCAN_TIMEOUT",
        error: "a scanning backend did not finish setting up in time",
      });
      expect(stuckEntry(scan)?.duration_ms).toBeGreaterThanOrEqual(150);
      expect(await settlesWithin(scanner.close?.(), 100)).toBe("settled");
    });

    it(`turns benign into unknown by the caller's deadline when a ${kind} backend's setup hangs, scan after scan`, async () => {
      const seen: string[] = [];
      const scanner = createMultiScanner(
        [
          stuckInSetup("stuck", result("benign"), { contract }),
          answering("yara", result("benign")),
        ],
        { onBackendError: (name, error) => seen.push(`${name}: ${error.message}`) },
      );
      for (const deadlineMs of [600, 300]) {
        const started = Date.now();
        const scan = await scanner.scan(artifactFromBytes("x"), {
          deadline: Date.now() + deadlineMs,
        });
        // By the deadline, give or take a loaded machine's timer lag (606 ms for 600 once in
        // a full CI run); a hang would be the stuck setup's, without end.
        expect(Date.now() - started).toBeLessThan(deadlineMs + 250);
        expect(scan).toMatchObject({ verdict: "unknown", confidence: 0 });
        expect(scan.metadata.comments).toEqual([
          "INCOMPLETE: stuck failed (SCAN_TIMEOUT); no other backend detected anything",
        ]);
      }
      expect(seen).toHaveLength(2);
      expect(seen[0]).toMatch(
        /^stuck: @engine\/multi: stuck did not finish setting up within \d+ ms/,
      );
      expect(await settlesWithin(scanner.close?.(), 100)).toBe("settled");
    });

    it(`closes promptly while a ${kind} backend's setup hangs, and closes that backend once it is set up`, async () => {
      const stuck = stuckInSetup("stuck", result("benign"), { contract, setupMs: 300 });
      const closed: string[] = [];
      const other: Scanner = {
        ...answering("yara", result("benign")),
        close: async () => {
          closed.push("yara");
        },
      };
      const scanner = createMultiScanner([stuck, other], { backendTimeoutMs: { stuck: 50 } });
      const scan = await scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 600 });
      expect(stuckEntry(scan)).toMatchObject({ error_code: "SCAN_TIMEOUT" });
      expect(await settlesWithin(scanner.close?.(), 100)).toBe("settled");
      expect(closed).toEqual(["yara"]);
      await sleep(400);
      expect(stuck.closes).toBe(1);
      expect(stuck.setups).toBe(1);
    });

    it(`bounds setup() by backendTimeoutMs and never lets a ${kind} backend's setup hold a scan`, async () => {
      const stuck = stuckInSetup("stuck", result("malicious", 1, "Late"), {
        contract,
        setupMs: 400,
      });
      const scanner = createMultiScanner([stuck, answering("yara", result("benign"))], {
        backendTimeoutMs: { stuck: 100 },
      });
      expect(await settlesWithin(scanner.setup?.(), 300)).toBe("settled");
      expect(scanner.setupFailures.get("stuck")?.message).toMatch(/did not finish setting up/);
      const early = await scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 2_000 });
      expect(early.verdict).toBe("unknown");
      await sleep(400);
      expect([...scanner.setupFailures.keys()]).toEqual([]);
      const late = await scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 2_000 });
      expect(late).toMatchObject({ verdict: "malicious", metadata: { malware_family: "Late" } });
      expect(stuck.setups).toBe(1);
      await scanner.close?.();
      // Without a budget, setup() waits as long as the backend's setup takes; scans do not.
      const unbounded = createMultiScanner([
        stuckInSetup("stuck", result("benign"), { contract }),
        answering("yara", result("malicious")),
      ]);
      const setup = unbounded.setup?.();
      const scan = await unbounded.scan(artifactFromBytes("x"), { deadline: Date.now() + 300 });
      expect(scan.verdict).toBe("malicious");
      expect(await settlesWithin(setup, 50)).toBe("pending");
      expect(await settlesWithin(unbounded.close?.(), 100)).toBe("settled");
    });
  }

  it("sets up a plain-object backend before its first scan, once", async () => {
    const plain = stuckInSetup("plain", result("malicious", 1, "Set"), {
      contract: false,
      setupMs: 20,
    });
    const scanner = createMultiScanner([plain, answering("yara", result("benign"))]);
    const scans = await Promise.all(
      [1, 2, 3].map(() => scanner.scan(artifactFromBytes("x"), { deadline: Date.now() + 2_000 })),
    );
    expect(scans.map((scan) => scan.verdict)).toEqual(["malicious", "malicious", "malicious"]);
    expect(plain.setups).toBe(1);
    await scanner.close?.();
    expect(plain.closes).toBe(1);
    expect((await scanner.scan(artifactFromBytes("x"))).verdict).toBe("malicious");
    expect(plain.setups).toBe(2);
  });
});

describe("provenance", () => {
  it("takes the family from the most confident detecting backend, the first on ties", async () => {
    const scanner = createMultiScanner([
      answering("a", result("malicious", 0.7, "A")),
      answering("b", result("malicious", 0.9, "B")),
      answering("c", result("malicious", 0.9, "C")),
      answering("d", result("suspicious", 1, "D")),
    ]);
    const scan = await scanner.scan(artifactFromBytes("x"));
    expect(scan.metadata.malware_family).toBe("B");
    expect(backendsOf(scan).map((backend) => backend.malware_family)).toEqual(["A", "B", "C", "D"]);
    expect(scan.metadata.scanner).toMatchObject({ vendor_version: "a:1.0;b:1.0;c:1.0;d:1.0" });
  });

  it("gives the tutorial's any/any/join as its legacy tuple", async () => {
    const answers = [result("benign", 1), result("malicious", 1, "Eicar"), result("benign", 1)];
    const backends = answers.map((answer, index) => answering(`backend${index}`, answer));
    const tuples = answers.map(toLegacyTuple);
    const tutorial = {
      bit: tuples.some((tuple) => tuple.bit),
      verdict: tuples.some((tuple) => tuple.verdict),
      metadata: tuples.map((tuple) => tuple.metadata).join(";"),
    };
    expect(toLegacyTuple(await createMultiScanner(backends).scan(artifactFromBytes("x")))).toEqual(
      tutorial,
    );
    const allBenign = [result("benign"), result("benign")];
    const benignTuples = allBenign.map(toLegacyTuple);
    expect(
      toLegacyTuple(
        await createMultiScanner(
          allBenign.map((answer, index) => answering(`b${index}`, answer)),
        ).scan(artifactFromBytes("x")),
      ),
    ).toEqual({
      bit: true,
      verdict: false,
      metadata: benignTuples.map((tuple) => tuple.metadata).join(";"),
    });
  });
});

describe("artifacts are read once", () => {
  function countingStream(content: Buffer): { stream: Readable; reads: () => number } {
    let reads = 0;
    let sent = false;
    const stream = new Readable({
      read() {
        reads += 1;
        this.push(sent ? null : content);
        sent = true;
      },
    });
    return { stream, reads: () => reads };
  }
  const seen = (name: string, sink: string[]) =>
    answering(name, async (artifact) => {
      sink.push(Buffer.from(await artifact.bytes()).toString("latin1"));
      return result("benign");
    });

  it("buffers a small declared-size stream once and gives every backend the same content", async () => {
    const contents: string[] = [];
    const { stream, reads } = countingStream(Buffer.from("shared content"));
    await createMultiScanner([seen("a", contents), seen("b", contents)]).scan(
      artifactFromStream(stream, { size: 14 }),
    );
    expect(contents).toEqual(["shared content", "shared content"]);
    expect(reads()).toBeLessThanOrEqual(2);
  });

  it("spools an unsized stream to a private temp file and deletes it afterwards", async () => {
    const contents: string[] = [];
    const paths: string[] = [];
    const withPath = answering("path", async (artifact) => {
      paths.push(artifact.path ?? "");
      return result("benign");
    });
    const { stream } = countingStream(eicarBytes());
    const scan = await createMultiScanner([
      seen("a", contents),
      withPath,
      createEicarScanner(),
    ]).scan(artifactFromStream(stream));
    expect(scan.verdict).toBe("malicious");
    expect(contents).toEqual([eicarBytes().toString("latin1")]);
    expect(paths[0]).toMatch(/engine-multi-/);
    // Its own spool directory is gone (other tests may spool at the same time: no global count).
    expect(existsSync(dirname(paths[0] ?? ""))).toBe(false);
  });
});

describe("lifecycle and options", () => {
  it("reports a backend whose setup fails and works with the rest", async () => {
    const broken = defineBroken();
    const scanner = createMultiScanner([broken, answering("yara", result("malicious", 1, "X"))]);
    await scanner.setup?.();
    expect([...scanner.setupFailures.keys()]).toEqual(["broken"]);
    expect((await scanner.scan(artifactFromBytes("x"))).verdict).toBe("malicious");
    await scanner.close?.();
    await scanner.close?.();
  });

  it("closes its backends when closed, even when it never scanned or set up", async () => {
    const closed: string[] = [];
    const tracked = (name: string): Scanner => ({
      ...answering(name, result("benign", 1, "")),
      close: async () => {
        closed.push(name);
      },
    });
    const never = createMultiScanner([tracked("a"), tracked("b")]);
    await never.close?.();
    expect(closed.sort()).toEqual(["a", "b"]);
    closed.length = 0;
    {
      await using disposed = createMultiScanner([tracked("c")]);
      expect((await disposed.scan(artifactFromBytes("x"))).verdict).toBe("benign");
    }
    expect(closed).toContain("c");
  });

  it("fails setup when no backend can be set up", async () => {
    await expect(createMultiScanner([defineBroken()]).setup?.()).rejects.toBeInstanceOf(
      BackendUnavailableError,
    );
  });

  it("validates its options", () => {
    expect(() => createMultiScanner([])).toThrow(InvalidOptionsError);
    expect(() => createMultiScanner([createEicarScanner(), createEicarScanner()])).toThrow(
      /eicar is given twice/,
    );
    expect(() => createMultiScanner([createEicarScanner()], { policy: "most" as never })).toThrow(
      InvalidOptionsError,
    );
    expect(() => createMultiScanner([createEicarScanner()], { backendTimeoutMs: -1 })).toThrow(
      InvalidOptionsError,
    );
  });
});

function defineBroken() {
  const scanner = throwing("broken");
  return Object.assign(scanner, {
    setup: async () => {
      throw new BackendUnavailableError({ message: "broken cannot start", scanner: "broken" });
    },
  });
}
