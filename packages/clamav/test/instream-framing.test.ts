import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  chunkHeader,
  decodeInstreamFrames,
  endOfStreamFrame,
  instreamFrames,
} from "../src/instream-framing.js";

describe("INSTREAM framing", () => {
  it("writes 4-byte big-endian lengths", () => {
    expect([...chunkHeader(0x01020304)]).toEqual([1, 2, 3, 4]);
    expect([...endOfStreamFrame]).toEqual([0, 0, 0, 0]);
    expect(() => chunkHeader(-1)).toThrow(RangeError);
    expect(() => chunkHeader(2 ** 32)).toThrow(RangeError);
  });

  it("round-trips any content at any chunk size, with no chunk over the size (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 5000 }),
        fc.integer({ min: 1, max: 700 }),
        (data, chunkBytes) => {
          const frames = [...instreamFrames(data, chunkBytes), endOfStreamFrame];
          const decoded = decodeInstreamFrames(Buffer.concat(frames));
          expect(decoded).toBeDefined();
          expect(Buffer.concat(decoded?.chunks ?? [])).toEqual(Buffer.from(data));
          for (const chunk of decoded?.chunks ?? [])
            expect(chunk.byteLength).toBeLessThanOrEqual(chunkBytes);
          expect(decoded?.chunks.length).toBe(Math.ceil(data.byteLength / chunkBytes));
        },
      ),
    );
  });

  it("reports an incomplete upload as undefined (property)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 2000 }),
        fc.integer({ min: 1, max: 300 }),
        (data, size) => {
          const whole = Buffer.concat([...instreamFrames(data, size), endOfStreamFrame]);
          expect(decodeInstreamFrames(whole.subarray(0, whole.length - 1))).toBeUndefined();
        },
      ),
    );
  });
});
