import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeScanner } from "@engine/core/testing";
import { afterAll, beforeAll } from "vitest";
import { createClamavScanner } from "../src/index.js";
import { type ManagedClamd, startManagedClamd } from "../src/managed.js";

let clamd: ManagedClamd;
let emptyDirectory: string;
beforeAll(async () => {
  clamd = await startManagedClamd();
  emptyDirectory = await mkdtemp(join(tmpdir(), "engine-no-clamd-"));
});
afterAll(async () => {
  await clamd?.[Symbol.asyncDispose]();
  await rm(emptyDirectory, { recursive: true, force: true });
});

describeScanner(
  "clamav over a unix socket (managed clamd)",
  () =>
    createClamavScanner({
      ...clamd.clientOptions("socket"),
      signaturesVersion: clamd.signaturesVersion,
    }),
  {
    capabilities: {
      createUnreachableScanner: () =>
        createClamavScanner({ socket: join(emptyDirectory, "clamd.sock") }),
    },
  },
);

describeScanner(
  "clamav over TCP (managed clamd)",
  () =>
    createClamavScanner({
      ...clamd.clientOptions("tcp"),
      signaturesVersion: clamd.signaturesVersion,
    }),
  {
    capabilities: {
      createUnreachableScanner: () =>
        createClamavScanner({ host: "127.0.0.1", port: 1, connectTimeoutMs: 500 }),
    },
  },
);
