// The guards of the test app's routes: the EICAR scanner (real), or scanners that are down or
// hang (the fault paths); disk storage in UPLOAD_DIRECTORY, read when a route first loads.
import { BackendUnavailableError, createEicarScanner, defineScanner } from "@engine/core";
import { diskStorage } from "@engine/upload";
import { nextUploadGuard } from "@engine/upload/next";

const storage = () => diskStorage({ directory: process.env.UPLOAD_DIRECTORY });
const limits = { fileBytes: 1024 * 1024, requestBytes: 4 * 1024 * 1024, files: 3 };

/** What the routes answer for an accepted upload. */
export const accepted = async (_request, upload) =>
  Response.json({ fields: upload.fields, files: upload.files });

export const guards = {
  upload: () => nextUploadGuard({ scanner: createEicarScanner(), storage: storage(), limits }),
  png: () =>
    nextUploadGuard({
      scanner: createEicarScanner(),
      storage: storage(),
      allowedTypes: ["image/png"],
    }),
  perFile: () =>
    nextUploadGuard({
      scanner: createEicarScanner(),
      storage: storage(),
      onRefusedFile: "per-file",
    }),
  down: () =>
    nextUploadGuard({
      scanner: defineScanner({
        name: "down",
        async scan() {
          throw new BackendUnavailableError({ message: "test: the backend is down" });
        },
      }),
      storage: storage(),
    }),
  hang: () => nextUploadGuard({ scanner: hangingScanner(), storage: storage(), timeoutMs: 400 }),
};

/** Counts of the hanging scanner's scans (GET /api/hang reads them). */
globalThis.hangingScans ??= { started: 0, aborted: 0 };
export const hangingScans = globalThis.hangingScans;

function hangingScanner() {
  return defineScanner({
    name: "hanging",
    async scan(artifact, { signal }) {
      hangingScans.started += 1;
      signal.addEventListener("abort", () => (hangingScans.aborted += 1), { once: true });
      for await (const _ of artifact.stream({ signal }));
      await new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(signal.reason)),
      );
    },
  });
}
