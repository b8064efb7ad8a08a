import { once } from "node:events";
import { Readable } from "node:stream";
import { Busboy, type BusboyFileStream, type BusboyInstance } from "@fastify/busboy";
import {
  type FilePart,
  type InspectedFile,
  type InspectionContext,
  inspectFile,
} from "./file-inspection.js";
import type { UploadFields } from "./outcome.js";
import type { UploadProblemCode } from "./problems.js";
import type { ResolvedUploadGuardOptions } from "./upload-options.js";
import { UploadRefusal } from "./upload-refusal.js";

/** A request body: a Node stream, a web `ReadableStream`, or any iterable of byte chunks. */
export type UploadBody = Readable | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

/** What the parse of a request gave: its fields, its files inspected, how far it was read. */
export interface ParsedRequest {
  fields: UploadFields;
  files: InspectedFile[];
}

/** Bytes of a part's field name; longer is a malformed request. */
const fieldNameBytes = 256;
/** Header lines of one part. */
const headerPairs = 32;

/** True for a `multipart/form-data` content type with a boundary. */
export function isMultipartFormData(contentType: string | undefined): boolean {
  return (
    typeof contentType === "string" &&
    /^multipart\/form-data\s*;/i.test(contentType) &&
    /;\s*boundary=/i.test(contentType)
  );
}

/** Sets `name` on `fields` as an own property (a field named `__proto__` is data too). */
function addField(fields: UploadFields, name: string, value: string): void {
  const previous = Object.hasOwn(fields, name) ? fields[name] : undefined;
  const next =
    previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
  Object.defineProperty(fields, name, {
    value: next,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * One request read: the body fed to the multipart parser (counted against `requestBytes`,
 * with back-pressure), each field kept, each file inspected in turn. Limits, malformed bodies
 * and the end of the body before the form's end refuse the request through `refuse` (which
 * aborts `signal`); the file in progress is then ended with the refusal.
 * Resolves when the form was read to its end and every file inspected; rejects with the
 * refusal otherwise (the files inspected so far are passed to `onFile` as they finish, so
 * that their writers can be discarded).
 */
export async function readMultipart(
  request: { headers: Record<string, string | string[] | undefined>; body: UploadBody },
  context: InspectionContext & { refuse(code: UploadProblemCode, cause?: unknown): void },
  onFile: (file: InspectedFile) => void,
): Promise<{ fields: UploadFields; bodyUnread: boolean }> {
  const { options, signal } = context;
  const contentType = request.headers["content-type"];
  if (typeof contentType !== "string" || !isMultipartFormData(contentType))
    throw new UploadRefusal("malformed-multipart");
  const busboy = createParser(contentType, request.headers, options);
  const fields: UploadFields = {};
  let current: BusboyFileStream | undefined;
  let files = Promise.resolve();
  const onAbort = () => current?.destroy(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  busboy.on("field", (name, value, nameTruncated, valueTruncated) => {
    if (nameTruncated) context.refuse("malformed-multipart");
    else if (valueTruncated) context.refuse("field-too-large");
    else addField(fields, name, value);
  });
  busboy.on("file", (field, stream, filename, _encoding, mimeType) => {
    const part: FilePart = {
      field,
      filename: filename ?? "",
      declaredType: mimeType ?? "",
      stream,
    };
    files = files.then(async () => {
      if (signal.aborted) return void stream.resume();
      current = stream;
      onFile(await inspectFile(part, context));
    });
    files.catch((error: unknown) => {
      stream.resume();
      context.refuse(error instanceof UploadRefusal ? error.code : "internal-error", error);
    });
  });
  busboy.on("partsLimit", () => context.refuse("too-many-parts"));
  busboy.on("filesLimit", () => context.refuse("too-many-files"));
  busboy.on("fieldsLimit", () => context.refuse("too-many-fields"));
  busboy.on("error", (error: unknown) => context.refuse("malformed-multipart", error));
  const finished = once(busboy, "finish", { signal });
  finished.catch(() => undefined);
  try {
    const bodyUnread = !(await feed(request.body, busboy, context));
    if (!signal.aborted) await finished;
    await files;
    if (signal.aborted) throw signal.reason;
    return { fields, bodyUnread };
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw error;
  } finally {
    signal.removeEventListener("abort", onAbort);
    busboy.removeAllListeners("file");
    busboy.on("error", () => {});
    busboy.destroy();
  }
}

function createParser(
  contentType: string,
  headers: Record<string, string | string[] | undefined>,
  options: ResolvedUploadGuardOptions,
): BusboyInstance {
  const { limits } = options;
  try {
    return Busboy({
      headers: { ...headers, "content-type": contentType },
      limits: {
        fileSize: limits.fileBytes,
        files: limits.files,
        fields: limits.fields,
        parts: limits.parts,
        fieldSize: limits.fieldBytes,
        fieldNameSize: fieldNameBytes,
        headerPairs,
      },
    });
  } catch (error) {
    throw new UploadRefusal("malformed-multipart", { cause: error });
  }
}

/** The body as an async iterable of byte chunks. */
function chunksOf(body: UploadBody): AsyncIterable<Uint8Array> {
  if (typeof (body as ReadableStream).getReader === "function")
    return Readable.fromWeb(body as import("node:stream/web").ReadableStream<Uint8Array>);
  return body as AsyncIterable<Uint8Array>;
}

/**
 * The body's next chunk, or `"aborted"` as soon as `signal` fires (a body that stalls must not
 * hold the request past its deadline). The abort listener is removed after each read: racing
 * every read against one long-lived promise would keep every chunk read alive (each race's
 * result stays reachable from that promise until it settles).
 */
function nextOrAbort(
  chunks: AsyncIterator<Uint8Array>,
  signal: AbortSignal,
): Promise<IteratorResult<Uint8Array> | "aborted"> {
  if (signal.aborted) return Promise.resolve("aborted");
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
    chunks.next().then(
      (result) => {
        signal.removeEventListener("abort", onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * Feeds the body to the parser with its back-pressure, counting bytes against
 * `requestBytes`. True when the body was read to its end; false when it stopped early (a
 * refusal, a limit); a body that fails (the client gone) refuses the request.
 */
async function feed(
  body: UploadBody,
  busboy: BusboyInstance,
  context: InspectionContext & { refuse(code: UploadProblemCode, cause?: unknown): void },
): Promise<boolean> {
  const { signal, options } = context;
  const chunks = chunksOf(body)[Symbol.asyncIterator]();
  let total = 0;
  try {
    for (;;) {
      const next = await nextOrAbort(chunks, signal);
      if (next === "aborted") {
        chunks.return?.().catch(() => undefined);
        return false;
      }
      if (next.done) break;
      total += next.value.byteLength;
      if (total > options.limits.requestBytes) {
        context.refuse("request-too-large");
        return false;
      }
      if (!busboy.write(next.value)) await once(busboy, "drain", { signal });
    }
  } catch (error) {
    if (!signal.aborted) context.refuse("upload-aborted", error);
    return false;
  }
  if (signal.aborted) return false;
  busboy.end();
  return true;
}
