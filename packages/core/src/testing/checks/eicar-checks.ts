import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { artifactFromFile } from "../../artifact.js";
import { eicarBytes } from "../../eicar.js";
import { assertVerdict, type ConformanceCheck, fail, withScanner } from "../conformance-support.js";
import { eicarArtifact } from "../test-artifacts.js";

/** The `eicar` group: EICAR in memory and on disk is malicious with a family (when `detectsEicar`). */
export const eicarChecks: readonly ConformanceCheck[] = [
  {
    group: "eicar",
    name: "detects the EICAR test file in memory and on disk as malicious",
    run: (subject) =>
      withScanner(subject, async (scanner) => {
        const inMemory = assertVerdict(
          await scanner.scan(eicarArtifact()),
          "malicious",
          "EICAR in memory",
        );
        if (inMemory.confidence <= 0)
          fail("EICAR in memory: a malicious verdict needs a confidence above 0");
        if (inMemory.metadata.malware_family.length === 0)
          fail("EICAR in memory: malware_family is empty");
        const directory = await mkdtemp(join(tmpdir(), "engine-conformance-"));
        try {
          const path = join(directory, "eicar.com");
          await writeFile(path, eicarBytes());
          assertVerdict(
            await scanner.scan(artifactFromFile(path)),
            "malicious",
            "EICAR from a file",
          );
        } finally {
          await rm(directory, { recursive: true, force: true });
        }
      }),
  },
];
