import { Readable } from "node:stream";
import { type Artifact, artifactFromBytes, artifactFromStream } from "../artifact.js";
import { eicarBytes } from "../eicar.js";

/**
 * Clean bytes that no real signature matches: numbered lines of plain English text.
 * @param label makes the content unique (two clean artifacts never share bytes)
 * @param lines number of lines. Default 16.
 */
export function cleanBytes(label: string, lines = 16): Buffer {
  const text: string[] = [];
  for (let line = 0; line < lines; line += 1) {
    text.push(`${label}: line ${line} of a harmless text file used by the conformance suite.`);
  }
  return Buffer.from(`${text.join("\n")}\n`, "utf8");
}

/** A clean in-memory artifact; see {@link cleanBytes}. */
export function cleanArtifact(label = "clean"): Artifact {
  return artifactFromBytes(cleanBytes(label), { filename: `${label}.txt` });
}

/** The EICAR test file as an in-memory artifact. */
export function eicarArtifact(): Artifact {
  return artifactFromBytes(eicarBytes(), { filename: "eicar.com.txt" });
}

/**
 * A stream artifact of `totalBytes` clean text produced on demand (never held in memory),
 * optionally ending with the EICAR string.
 */
export function largeStreamArtifact(
  totalBytes: number,
  options: { endWithEicar?: boolean } = {},
): Artifact {
  const tail = options.endWithEicar ? eicarBytes() : Buffer.alloc(0);
  const block = cleanBytes("large artifact", 1024);
  let remaining = totalBytes - tail.length;
  const stream = new Readable({
    highWaterMark: block.length,
    read() {
      if (remaining > 0) {
        const size = Math.min(remaining, block.length);
        remaining -= size;
        this.push(block.subarray(0, size));
        return;
      }
      if (tail.length > 0 && remaining === 0) {
        remaining = -1;
        this.push(tail);
        return;
      }
      this.push(null);
    },
  });
  return artifactFromStream(stream, { size: totalBytes, filename: "large.txt" });
}

/**
 * A stream artifact that sends one clean chunk and then stalls forever (until destroyed):
 * a scan of it only ends through its signal or deadline.
 */
export function stalledStreamArtifact(): Artifact {
  let sent = false;
  const stream = new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(cleanBytes("stalled stream"));
      }
    },
  });
  return artifactFromStream(stream, { filename: "stalled.txt" });
}
