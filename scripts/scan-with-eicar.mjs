// The engine's run command until apps/microengine lands: scans the given files (or, with no
// arguments, a built-in EICAR sample and a clean sample) with the EICAR scanner from
// @engine/core and prints one JSON line per artifact. Exit code 1 when a given file is
// malicious, 2 on errors; with no arguments, 0 when the self-demo answers as expected.
import {
  artifactFromBytes,
  artifactFromFile,
  createEicarScanner,
  EngineError,
  eicarBytes,
  scanResultForError,
} from "@engine/core";

const paths = process.argv.slice(2).filter((argument) => argument !== "--");
const artifacts =
  paths.length > 0
    ? paths.map((path) => ({ label: path, artifact: artifactFromFile(path) }))
    : [
        { label: "<built-in EICAR sample>", artifact: artifactFromBytes(eicarBytes()) },
        { label: "<built-in clean sample>", artifact: artifactFromBytes("hello, world\n") },
      ];

const scanner = createEicarScanner();
let malicious = false;
let failed = false;
const verdicts = [];
for (const { label, artifact } of artifacts) {
  try {
    const result = await scanner.scan(artifact, { deadline: Date.now() + 30_000 });
    verdicts.push(result.verdict);
    malicious ||= result.verdict === "malicious";
    console.log(JSON.stringify({ artifact: label, ...result }));
  } catch (error) {
    failed = true;
    const code = EngineError.isInstance(error) ? error.code : "ENGINE_ERROR";
    console.log(JSON.stringify({ artifact: label, error: code, ...scanResultForError(error) }));
  }
}
await scanner.close();
if (paths.length === 0) {
  // The self-demo is healthy when EICAR is malicious and the clean sample benign.
  process.exitCode = verdicts.join() === "malicious,benign" ? 0 : 2;
} else {
  process.exitCode = failed ? 2 : malicious ? 1 : 0;
}
