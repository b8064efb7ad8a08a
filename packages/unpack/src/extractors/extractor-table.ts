import type { ContainerFormat } from "../container-formats.js";
import { cfbExtractor } from "./cfb-extractor.js";
import type { Extractor } from "./extractor.js";
import { tarExtractor } from "./tar-extractor.js";
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
  zstd: zstdExtractor,
  cfb: cfbExtractor,
};

/** The extractor of `format`, if there is one. */
export function extractorFor(format: ContainerFormat): Extractor | undefined {
  return extractorTable[format];
}
