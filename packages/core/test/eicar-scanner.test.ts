import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  artifactFromBytes,
  artifactFromStream,
  createEicarScanner,
  eicarBytes,
  eicarMalwareFamily,
  engineCoreVersion,
  InvalidOptionsError,
} from "../src/index.js";
import { describeScanner } from "../src/testing/index.js";

describeScanner("eicar", () => createEicarScanner(), { largeArtifactBytes: 8 * 1024 * 1024 });

describe("createEicarScanner", () => {
  it("reports the family, product and versions", async () => {
    const result = await createEicarScanner({ confidence: 0.9 }).scan(
      artifactFromBytes(eicarBytes()),
    );
    expect(result.verdict).toBe("malicious");
    expect(result.confidence).toBe(0.9);
    expect(result.metadata.malware_family).toBe(eicarMalwareFamily);
    expect(result.metadata.product).toBe("eicar");
    expect(result.metadata.scanner?.version).toBe(engineCoreVersion);
  });

  it.each([1, 2, 33, 67, 68, 100])(
    "finds EICAR split across stream chunks every %i bytes",
    async (size) => {
      const content = Buffer.concat([Buffer.from("prefix "), eicarBytes(), Buffer.from(" suffix")]);
      const chunks: Buffer[] = [];
      for (let offset = 0; offset < content.length; offset += size)
        chunks.push(content.subarray(offset, offset + size));
      const result = await createEicarScanner().scan(artifactFromStream(Readable.from(chunks)));
      expect(result.verdict).toBe("malicious");
    },
  );

  it("does not match a near miss", async () => {
    const nearMiss = Buffer.from(eicarBytes());
    nearMiss[nearMiss.length - 1] = 0x2b;
    expect((await createEicarScanner().scan(artifactFromBytes(nearMiss))).verdict).toBe("benign");
  });

  it("validates its options", () => {
    expect(() => createEicarScanner({ confidence: 2 })).toThrow(InvalidOptionsError);
    expect(() => createEicarScanner({ colour: "red" } as never)).toThrow(InvalidOptionsError);
  });
});
