import { randomBytes } from "node:crypto";
import { deflateRawSync } from "node:zlib";

const crcTable = new Uint32Array(256).map((_, index) => {
  let value = index;
  for (let bit = 0; bit < 8; bit += 1) value = value & 1 ? 0xedb88320 ^ (value >>> 1) : value >>> 1;
  return value >>> 0;
});

/** One CRC-32 step over one byte (PKWARE's `crc32(crc, byte)`). */
function crcStep(crc: number, byte: number): number {
  return ((crcTable[(crc ^ byte) & 0xff] as number) ^ (crc >>> 8)) >>> 0;
}

/** CRC-32 of `bytes`, as zip records it. */
export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcStep(crc, byte);
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * PKWARE's traditional ("ZipCrypto") encryption, as `zip -P` writes it: the 12-byte header
 * (11 random bytes and the CRC's high byte) then the data, each byte XORed with the key stream.
 */
function zipCryptoEncrypt(data: Uint8Array, password: string, crc: number): Uint8Array {
  let key0 = 0x12345678;
  let key1 = 0x23456789;
  let key2 = 0x34567890;
  const update = (byte: number): void => {
    key0 = crcStep(key0, byte);
    key1 = (Math.imul((key1 + (key0 & 0xff)) >>> 0, 134775813) + 1) >>> 0;
    key2 = crcStep(key2, key1 >>> 24);
  };
  for (const byte of Buffer.from(password, "utf8")) update(byte);
  const header = randomBytes(12);
  header[11] = crc >>> 24;
  const plain = Buffer.concat([header, data]);
  const out = Buffer.alloc(plain.length);
  for (let index = 0; index < plain.length; index += 1) {
    const temp = (key2 | 2) & 0xffff;
    const keyByte = (Math.imul(temp, temp ^ 1) >>> 8) & 0xff;
    const byte = plain[index] as number;
    out[index] = byte ^ keyByte;
    update(byte);
  }
  return out;
}

/** One file of a {@link zipArchive}. */
export interface ZipEntry {
  name: string;
  data: Uint8Array;
}

/** Options of {@link zipArchive}. */
export interface ZipOptions {
  /** Encrypt every entry with this password (ZipCrypto, as `zip -P`). Default: none. */
  password?: string;
  /** `"deflate"` (default, as `zip` does: the content is not visible in the archive's bytes) or `"store"`. */
  method?: "deflate" | "store";
}

/**
 * A zip archive, optionally encrypted with a password (ZipCrypto, as `zip -P`). Small and
 * dependency-free: it builds the probes that check a clamd's alert settings (an encrypted
 * archive, a nest past the recursion limit) and test data.
 */
export function zipArchive(entries: readonly ZipEntry[], options: ZipOptions = {}): Buffer {
  const method = options.method === "store" ? 0 : 8;
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, "utf8");
    const crc = crc32(entry.data);
    const packed = method === 8 ? deflateRawSync(entry.data) : entry.data;
    const stored =
      options.password === undefined ? packed : zipCryptoEncrypt(packed, options.password, crc);
    const flags = options.password === undefined ? 0 : 1;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(0, 10); // time
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(stored.length, 18);
    local.writeUInt32LE(entry.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4); // version made by
    central.writeUInt16LE(20, 6); // version needed
    central.writeUInt16LE(flags, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(0, 12);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(stored.length, 20);
    central.writeUInt32LE(entry.data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, Buffer.from(stored));
    centrals.push(central, name);
    offset += local.length + name.length + stored.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** `data` inside `depth` deflated zips, each holding the previous one (`depth` 1 is a plain zip). */
export function nestedZip(name: string, data: Uint8Array, depth: number): Buffer {
  let current: Buffer = Buffer.from(data);
  let currentName = name;
  for (let level = 1; level <= depth; level += 1) {
    current = zipArchive([{ name: currentName, data: current }]);
    currentName = `level-${level}.zip`;
  }
  return current;
}
