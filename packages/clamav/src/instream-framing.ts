/** The zero-length chunk that ends an `INSTREAM` upload. */
export const endOfStreamFrame: Buffer = Buffer.alloc(4);

/** Largest chunk the 4-byte length header can describe. */
export const maximumChunkBytes = 0xffff_ffff;

/** The 4-byte big-endian length header of one `INSTREAM` chunk. */
export function chunkHeader(length: number): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > maximumChunkBytes) {
    throw new RangeError(`an INSTREAM chunk length must be 0..${maximumChunkBytes}, got ${length}`);
  }
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(length, 0);
  return header;
}

/**
 * Splits `data` into `INSTREAM` chunks of at most `chunkBytes` bytes, each as its length
 * header and its body (a view of `data`, never a copy). Yields nothing for empty `data`: a
 * zero-length chunk would be the end frame.
 */
export function* instreamChunks(
  data: Uint8Array,
  chunkBytes: number,
): Generator<[header: Buffer, body: Uint8Array]> {
  for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
    const body = data.subarray(offset, Math.min(offset + chunkBytes, data.byteLength));
    yield [chunkHeader(body.byteLength), body];
  }
}

/** {@link instreamChunks} flattened: header, body, header, body, ... (without the end frame). */
export function* instreamFrames(data: Uint8Array, chunkBytes: number): Generator<Uint8Array> {
  for (const [header, body] of instreamChunks(data, chunkBytes)) {
    yield header;
    yield body;
  }
}

/**
 * Decodes a complete `INSTREAM` upload (frames up to and including the zero-length end
 * frame) back into its chunks. Used by tests and the fake clamd. Returns `undefined` when
 * `data` is not complete yet; `rest` holds any bytes after the end frame.
 */
export function decodeInstreamFrames(
  data: Uint8Array,
): { chunks: Uint8Array[]; rest: Uint8Array } | undefined {
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  while (offset + 4 <= view.length) {
    const length = view.readUInt32BE(offset);
    offset += 4;
    if (length === 0) return { chunks, rest: view.subarray(offset) };
    if (offset + length > view.length) return undefined;
    chunks.push(view.subarray(offset, offset + length));
    offset += length;
  }
  return undefined;
}
