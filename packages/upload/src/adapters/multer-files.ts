import { open, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Artifact,
  artifactFromBytes,
  artifactFromFile,
  parseOptions,
  type ScanResult,
} from "@engine/core";
import type { z } from "zod";
import { decideType, typeHeadBytes } from "../content-type-policy.js";
import type { UploadOutcome } from "../outcome.js";
import { problemOf, type UploadProblemCode } from "../problems.js";
import { codeOfScanError, codeOfVerdict, gravestCode } from "../refusal-codes.js";
import { uploadGuardOptionsSchema } from "../upload-options.js";
import { sendRefusal } from "./node-http.js";

/** A file as multer describes it (disk storage gives `path`, memory storage `buffer`). */
export interface MulterFile {
  fieldname: string;
  originalname: string;
  mimetype: string;
  size: number;
  path?: string;
  buffer?: Buffer;
  /** Set by {@link scanMulterFiles}: the scanner's answer. */
  scan?: ScanResult;
}

const scanMulterFilesOptionsSchema = uploadGuardOptionsSchema.pick({
  scanner: true,
  allowedTypes: true,
  timeoutMs: true,
  suspicious: true,
  unknown: true,
  retryAfterSeconds: true,
});

/** Options of {@link scanMulterFiles}: the guard's, without storage (multer stored the files). */
export type ScanMulterFilesOptions = z.input<typeof scanMulterFilesOptionsSchema>;

/** Every file multer put on the request (`req.file`, `req.files` as an array or by field). */
function multerFiles(request: IncomingMessage): MulterFile[] {
  const { file, files } = request as IncomingMessage & {
    file?: MulterFile;
    files?: MulterFile[] | Record<string, MulterFile[]>;
  };
  const listed = Array.isArray(files) ? files : Object.values(files ?? {}).flat();
  return [...(file ? [file] : []), ...listed];
}

async function headOf(file: MulterFile): Promise<Uint8Array> {
  if (file.buffer) return file.buffer.subarray(0, typeHeadBytes);
  const handle = await open(file.path ?? "", "r");
  try {
    const buffer = Buffer.alloc(typeHeadBytes);
    const { bytesRead } = await handle.read(buffer, 0, typeHeadBytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

const artifactOf = (file: MulterFile): Artifact =>
  file.path !== undefined
    ? artifactFromFile(file.path, { filename: "upload" })
    : artifactFromBytes(file.buffer ?? new Uint8Array(0));

/** Why one stored file is refused, or undefined when it may stay. */
async function checkFile(
  file: MulterFile,
  settings: z.output<typeof scanMulterFilesOptionsSchema>,
  deadline: number,
): Promise<UploadProblemCode | undefined> {
  const type = await decideType(await headOf(file), file.mimetype, settings.allowedTypes);
  if (!type.allowed) return "type-not-allowed";
  try {
    file.scan = await settings.scanner.scan(artifactOf(file), { deadline });
    return codeOfVerdict(file.scan, settings);
  } catch (error) {
    return codeOfScanError(error);
  }
}

/**
 * For apps that already use multer: Express middleware put after it that scans every file
 * multer stored (disk or memory storage), and when one is refused deletes every file of the
 * request from disk and answers with the package's problem+json contract. Prefer
 * `expressUploadGuard`, which scans before anything is stored: with multer, files are on disk
 * (unscanned) until this middleware has run.
 *
 * @example
 * app.post("/upload", multer({ dest: "uploads" }).array("files"), scanMulterFiles({ scanner }),
 *   (req, res) => res.json({ kept: req.files.length }));
 */
export function scanMulterFiles(
  options: ScanMulterFilesOptions,
): (request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) => void {
  const settings = parseOptions(scanMulterFilesOptionsSchema, options, {
    where: "@engine/upload: scanMulterFiles",
  });
  return (request, response, next) => {
    const files = multerFiles(request);
    const deadline = Date.now() + settings.timeoutMs;
    const checks = files.map((file) =>
      checkFile(file, settings, deadline).catch(() => "internal-error" as const),
    );
    Promise.all(checks).then(async (codes) => {
      const gravest = gravestCode(
        codes.filter((code): code is UploadProblemCode => code !== undefined),
      );
      if (gravest === undefined) return next();
      await Promise.all(
        files.map((file) => (file.path ? rm(file.path, { force: true }) : undefined)),
      );
      const outcome: Extract<UploadOutcome, { ok: false }> = {
        ok: false,
        problem: problemOf(gravest, {
          retryAfterSeconds: settings.retryAfterSeconds,
          files: files.map((file, index) => ({
            field: file.fieldname,
            filename: file.originalname,
            ...(codes[index] ? { code: codes[index] } : {}),
          })),
        }),
        fields: {},
        files: [],
        bodyUnread: false,
      };
      sendRefusal(response, outcome);
    }, next);
  };
}
