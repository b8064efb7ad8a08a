/**
 * Reads exact numbers of bytes, in order, from chunks as they come (a container read as a
 * stream): for formats made of headers and bodies whose lengths the headers give. Holds at
 * most what one `read` asks for plus one chunk.
 */
export class ExactReader {
  readonly #chunks: AsyncIterator<Uint8Array>;
  #held: Uint8Array = new Uint8Array(0);
  #ended = false;
  /** Bytes taken so far: the offset of the next byte in the source. */
  offset = 0;

  constructor(chunks: AsyncIterable<Uint8Array>) {
    this.#chunks = chunks[Symbol.asyncIterator]();
  }

  /** Holds at least `length` bytes, or all that is left. */
  async #fill(length: number): Promise<void> {
    if (this.#held.byteLength >= length || this.#ended) return;
    const parts = [this.#held];
    let total = this.#held.byteLength;
    while (total < length) {
      const next = await this.#chunks.next();
      if (next.done) {
        this.#ended = true;
        break;
      }
      parts.push(next.value);
      total += next.value.byteLength;
    }
    this.#held = parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts, total);
  }

  /** The next `length` bytes: fewer only when the source ends first. */
  async read(length: number): Promise<Uint8Array> {
    await this.#fill(length);
    const taken = this.#held.subarray(0, length);
    this.#held = this.#held.subarray(taken.byteLength);
    this.offset += taken.byteLength;
    return taken;
  }

  /** Passes over the next `length` bytes without holding them; returns how many there were. */
  async skip(length: number): Promise<number> {
    let left = length;
    while (left > 0) {
      if (this.#held.byteLength === 0) await this.#fill(1);
      if (this.#held.byteLength === 0) break;
      const passed = Math.min(left, this.#held.byteLength);
      this.#held = this.#held.subarray(passed);
      left -= passed;
    }
    this.offset += length - left;
    return length - left;
  }

  /** Stops reading the source (its stream is closed). */
  async close(): Promise<void> {
    this.#held = new Uint8Array(0);
    await this.#chunks.return?.();
  }
}
