import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  artifactFromBytes,
  artifactFromFile,
  eicarBytes,
  OverloadedError,
  ScanTimeoutError,
} from "@engine/core";
import { describeScanner } from "@engine/core/testing";
import { describe, expect, it } from "vitest";
import { createYaraScanner } from "../src/index.js";
import { pathologicalRules, ruleDirectory, withEventLoopLag } from "./rule-files.js";

// The native engine needs @engine/yara-native built against libyara-dev, which
// scripts/install-test-dependencies.sh installs.
const quiet = { onDiagnostics: () => {} };

describeScanner(
  "yara (native engine, bundled rules)",
  () => createYaraScanner({ engine: "native", ...quiet }),
  {
    largeArtifactBytes: 16 * 1024 * 1024,
    capabilities: {
      createUnreachableScanner: () =>
        createYaraScanner({ engine: "native", rulesDir: "/nonexistent/rules", ...quiet }),
    },
  },
);

describe("the native engine", () => {
  it("bounds its scans on the thread pool: `workers` at once, `maxQueuedScans` waiting, then OverloadedError", async () => {
    await using scanner = createYaraScanner({
      engine: "native",
      workers: 1,
      maxQueuedScans: 1,
      rules: 'rule slowish { strings: $a = "AAAAB" condition: $a }',
      ...quiet,
    });
    await scanner.setup?.();
    const big = artifactFromBytes(Buffer.alloc(16 * 1024 * 1024, 0x41));
    const first = scanner.scan(big);
    const second = scanner.scan(big);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(scanner.status()).toMatchObject({
      ready: true,
      workers: 1,
      busy: 1,
      queued: 1,
      maxQueued: 1,
    });
    await expect(scanner.scan(big)).rejects.toBeInstanceOf(OverloadedError);
    await expect(Promise.all([first, second])).resolves.toHaveLength(2);
    expect(scanner.status()).toMatchObject({ busy: 0, queued: 0 });
  }, 60_000);

  it("scans a local file read whole (up to 1 MiB, to its end) or mapped (above) with the same answers as its bytes", async () => {
    const directory = await mkdtemp(join(tmpdir(), "engine-yara-native-files-"));
    await using scanner = createYaraScanner({
      engine: "native",
      rules: [
        'rule tail { strings: $a = "TAILMARK" condition: $a at filesize - 8 }',
        "rule sized { condition: filesize == 1048576 or filesize == 1048577 or filesize == 0 }",
        "rule first { condition: uint8(0) == 0x41 }",
      ].join("\n"),
      ...quiet,
    });
    try {
      // Each side of the line at which a file is mapped instead of read, and an empty file.
      for (const size of [0, 8, 1024 * 1024, 1024 * 1024 + 1]) {
        const bytes = Buffer.alloc(size, 0x41);
        if (size >= 8) bytes.write("TAILMARK", size - 8, "latin1");
        const path = join(directory, `f${size}.bin`);
        await writeFile(path, bytes);
        const rules = async (artifact: Parameters<typeof scanner.scan>[0]) =>
          (
            (await scanner.scan(artifact)).metadata.yara as { matches: Array<{ rule: string }> }
          ).matches
            .map((match) => match.rule)
            .sort();
        const fromFile = await rules(artifactFromFile(path));
        expect(fromFile).toEqual(await rules(artifactFromBytes(bytes)));
        expect(fromFile).toEqual(
          size === 0 ? ["sized"] : size === 8 ? ["tail"] : ["first", "sized", "tail"],
        );
      }
      // A file whose size says 0 though it has content (procfs) is read to its end, not
      // scanned as empty.
      await using procfs = createYaraScanner({
        engine: "native",
        rules: 'rule status { strings: $a = "VmRSS:" condition: $a }',
        ...quiet,
      });
      const status = await procfs.scan(artifactFromFile("/proc/self/status"));
      expect(status.verdict).not.toBe("benign");
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });

  it("is what auto picks when it loads, and says so in the metadata", async () => {
    await using scanner = createYaraScanner({ engine: "auto", ...quiet });
    const result = await scanner.scan(artifactFromBytes(eicarBytes()));
    expect(scanner.engine).toBe("native");
    expect(result.metadata.yara).toMatchObject({ engine: "native" });
    expect(result.metadata.scanner?.vendor_version).toMatch(/^4\./);
    expect(scanner.vendorVersion).toBe(result.metadata.scanner?.vendor_version);
  });

  it("reports broken files with path and line, mapped through includes, and keeps the good ones", async () => {
    const directory = await ruleDirectory({
      "good.yar": 'rule good { strings: $a = "GOOD" condition: $a }\n',
      "broken/main.yar": 'include "inner.yar"\nrule ok { condition: true }\n',
      "broken/inner.yar": "rule fine { condition: true }\n\nrule bad { condition: $nope }\n",
    });
    await using scanner = createYaraScanner({
      engine: "native",
      rulesDir: directory.path,
      ...quiet,
    });
    await scanner.setup?.();
    const error = scanner.diagnostics.find((diagnostic) => diagnostic.severity === "error");
    expect(error).toMatchObject({ path: expect.stringMatching(/broken\/inner\.yar$/), line: 3 });
    expect(
      (
        (await scanner.scan(artifactFromBytes("GOOD"))).metadata.yara as {
          matches: Array<{ rule: string }>;
        }
      ).matches.map((match) => match.rule),
    ).toEqual(["good"]);
    await directory.remove();
  });

  it("ends a pathological scan at the deadline, stops it by libyara's own timeout, and keeps working", async () => {
    const directory = await ruleDirectory(pathologicalRules());
    await using scanner = createYaraScanner({
      engine: "native",
      rulesDir: directory.path,
      ...quiet,
    });
    await scanner.setup?.();
    const started = Date.now();
    await expect(
      scanner.scan(artifactFromBytes(Buffer.alloc(4 * 1024 * 1024, 1)), {
        deadline: Date.now() + 500,
      }),
    ).rejects.toBeInstanceOf(ScanTimeoutError);
    expect(Date.now() - started).toBeLessThan(1500);
    expect((await scanner.scan(artifactFromBytes(eicarBytes()))).verdict).toBe("malicious");
    await directory.remove();
  });

  it("keeps the event loop responsive while libyara scans 200 MB", async () => {
    await using scanner = createYaraScanner({ engine: "native", ...quiet });
    await scanner.setup?.();
    const buffer = Buffer.alloc(200 * 1024 * 1024, 0x41);
    const { result, worstLagMs } = await withEventLoopLag(() =>
      scanner.scan(artifactFromBytes(buffer)),
    );
    expect(result.verdict).toBe("benign");
    expect(worstLagMs).toBeLessThan(20);
  });
});
