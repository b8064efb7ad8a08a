import type { ContainerFormat } from "../container-formats.js";
import { cfbExtractor } from "./cfb-extractor.js";
import type { Extractor } from "./extractor.js";
import {
  bzip2Extractor,
  cabExtractor,
  isoExtractor,
  lzipExtractor,
  lzmaExtractor,
  rarExtractor,
  sevenZipArchiveExtractor,
  xzExtractor,
} from "./seven-zip-extractor.js";
import { tarExtractor } from "./tar-extractor.js";
import { zipExtractor } from "./zip-extractor.js";
import { brotliExtractor, gzipExtractor } from "./zlib-extractors.js";
import { zstdExtractor } from "./zstd-extractor.js";

/**
 * The extractor of each container format. A format missing here is recognised by its magic
 * but not decoded: `SKIPPED:UNSUPPORTED`, never benign.
 */
const extractorTable: Partial<Record<ContainerFormat, Extractor>> = {
  gzip: gzipExtractor,
  brotli: brotliExtractor,
  tar: tarExtractor,
  "7z": sevenZipArchiveExtractor,
  rar: rarExtractor,
  iso: isoExtractor,
  cab: cabExtractor,
  xz: xzExtractor,
  bzip2: bzip2Extractor,
  lzma: lzmaExtractor,
  lzip: lzipExtractor,
  zstd: zstdExtractor,
  cfb: cfbExtractor,
  zip: zipExtractor,
};

/** The extractor of `format`, if there is one. */
export function extractorFor(format: ContainerFormat): Extractor | undefined {
  return extractorTable[format];
}
