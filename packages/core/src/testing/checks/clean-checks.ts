import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromFile, artifactFromStream } from "../../artifact.js";
import { assertVerdict, type ConformanceCheck, withScanner } from "../conformance-support.js";
import { cleanArtifact, cleanBytes } from "../test-artifacts.js";

/** The `clean` group: clean bytes, a clean file and a clean stream are benign. */
export const cleanChecks: readonly ConformanceCheck[] = [
  {
    group: "clean",
    name: "answers benign for clean content from bytes, a file and a stream",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        assertVerdict(await scanner.scan(cleanArtifact("bytes")), "benign", "clean bytes");
        const directory = await mkdtemp(join(tmpdir(), "engine-conformance-"));
        try {
          const path = join(directory, "clean.txt");
          await writeFile(path, cleanBytes("file"));
          assertVerdict(await scanner.scan(artifactFromFile(path)), "benign", "a clean file");
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
        const stream = artifactFromStream(
          [cleanBytes("stream, part 1"), cleanBytes("stream, part 2")].values(),
        );
        assertVerdict(await scanner.scan(stream), "benign", "a clean stream");
      }),
  },
];
