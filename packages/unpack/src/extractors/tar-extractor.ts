import type { Header } from "tar-stream";
import type { ExtractedEntry, Extractor } from "./extractor.js";
import { lazyLibrary } from "./library-loading.js";

/** Entry types whose content is file bytes (`file`, and `contiguous-file`); the rest is metadata. */
const fileTypes = new Set(["file", "contiguous-file"]);

/** True when pax records or GNU long-name/long-link headers shaped this entry's header. */
function extended(header: Header): boolean {
  return (
    (header.pax !== undefined && header.pax !== null && Object.keys(header.pax).length > 0) ||
    header.name.length > 100 ||
    (header.linkname?.length ?? 0) > 100
  );
}

/** tar-stream, loaded at the first tar. */
const tarStream = lazyLibrary("tar-stream", () => import("tar-stream"));

/**
 * tar (POSIX ustar, GNU and old V7 headers, pax extended names), streamed with `tar-stream`:
 * each regular file's content is read as it comes; links, directories and devices carry no
 * bytes and are passed over (a link is never followed).
 */
export const tarExtractor: Extractor = {
  format: "tar",
  async *entries(source, context): AsyncGenerator<ExtractedEntry> {
    const { extract } = await tarStream();
    const input = source.artifact.stream({ signal: context.signal });
    const parser = extract();
    input.on("error", (error) => parser.destroy(error));
    input.pipe(parser);
    try {
      for await (const entry of parser) {
        const { header } = entry;
        if (!fileTypes.has(header.type ?? "file")) {
          entry.resume();
          continue;
        }
        yield {
          kind: "file",
          name: header.name,
          compressedSize: header.size,
          // `pax` when extended headers (pax or GNU) changed what the plain header says: a
          // reader that skips them (clamd, for one) does not see this member as we do.
          method: extended(header) ? "pax" : "ustar",
          open: () => entry as AsyncIterable<Uint8Array>,
        };
        // An entry the walker did not read to its end (a limit) is passed over.
        entry.resume();
      }
    } finally {
      input.unpipe(parser);
      input.destroy();
      parser.destroy();
    }
  },
};
