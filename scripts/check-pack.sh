#!/usr/bin/env bash
# Packs every published package, installs the tarballs in an empty project outside the
# workspace (third-party dependencies come from the npm registry, as for a user), and
# typechecks and runs a ten-line TypeScript program per package against them: as ES modules
# (import) in the project, and as CommonJS (require, typed by the .d.cts files) in a CommonJS
# package inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tsc="$root/node_modules/.bin/tsc"
# An odd install path (space, #, %) on purpose: file URLs built from it must stay right.
work=$(mktemp -d "${TMPDIR:-/tmp}/engine pack #%.XXXXXX")
trap 'rm -rf "$work"' EXIT

for package in packages/*/; do
  (cd "$package" && pnpm pack --pack-destination "$work" >/dev/null)
done
cd "$work"
cat > package.json <<'JSON'
{ "name": "pack-check", "private": true, "type": "module" }
JSON
npm install --no-audit --no-fund --loglevel=error ./*.tgz @types/node@20 >/dev/null
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
  "strict": true, "outDir": "out", "types": ["node"], "lib": ["ES2022", "ESNext.Disposable"] },
  "include": ["*.ts"] }
JSON

cat > check-core.ts <<'TS'
import { artifactFromBytes, createEicarScanner, eicarBytes, type ScanResult } from "@engine/core";

await using scanner = createEicarScanner();
const results: ScanResult[] = [];
for (const content of [eicarBytes(), Buffer.from("hello")]) {
  results.push(await scanner.scan(artifactFromBytes(content)));
}
console.log(`@engine/core from its tarball: ${results.map((result) => result.verdict).join(", ")}`);
if (results[0]?.verdict !== "malicious" || results[1]?.verdict !== "benign") process.exit(1);
TS

cat > check-clamav.ts <<'TS'
import { createClamavScanner } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { artifactFromBytes, artifactFromFile, eicarBytes } from "@engine/core";

await using clamd = await startManagedClamd(); // uses the signatures shipped in the tarball
await using scanner = createClamavScanner(clamd.clientOptions());
const malicious = await scanner.scan(artifactFromBytes(eicarBytes()));
const benign = await scanner.scan(artifactFromBytes("hello"));
const local = await scanner.client.scan(artifactFromFile("package.json")); // FILDES via @engine/clamav-native
console.log(`@engine/clamav from its tarball: ${malicious.verdict} (${malicious.metadata.malware_family}), ${benign.verdict}, local files by ${local.mode}`);
if (malicious.verdict !== "malicious" || benign.verdict !== "benign" || local.mode !== "fildes") process.exit(1);
TS

cat > check-yara.ts <<'TS'
import { artifactFromBytes, eicarBytes } from "@engine/core";
import { createYaraScanner } from "@engine/yara";

await using scanner = createYaraScanner(); // the rules and the worker shipped in the tarball
const malicious = await scanner.scan(artifactFromBytes(eicarBytes()));
const benign = await scanner.scan(artifactFromBytes("hello"), { deadline: Date.now() + 10_000 });
console.log(`@engine/yara from its tarball: ${malicious.verdict} (${malicious.metadata.malware_family}), ${benign.verdict}`);
if (malicious.verdict !== "malicious" || benign.verdict !== "benign") process.exit(1);
TS

cat > check-yara-native.ts <<'TS'
import { artifactFromBytes, eicarBytes } from "@engine/core";
import { createYaraScanner } from "@engine/yara";

await using scanner = createYaraScanner({ engine: "native" }); // @engine/yara-native, built by npm install
const malicious = await scanner.scan(artifactFromBytes(eicarBytes()));
const benign = await scanner.scan(artifactFromBytes("hello"));
console.log(`@engine/yara-native from its tarball: libyara ${malicious.metadata.scanner?.vendor_version}, ${malicious.verdict}, ${benign.verdict}`);
if (malicious.verdict !== "malicious" || benign.verdict !== "benign") process.exit(1);
TS

cat > check-multi.ts <<'TS'
import { artifactFromBytes, createEicarScanner, eicarBytes } from "@engine/core";
import { createMultiScanner, quorum } from "@engine/multi";
import { createYaraScanner } from "@engine/yara";

await using engine = createMultiScanner([createEicarScanner(), createYaraScanner()], { policy: quorum(2) });
const malicious = await engine.scan(artifactFromBytes(eicarBytes()));
const benign = await engine.scan(artifactFromBytes("hello"));
console.log(`@engine/multi from its tarball: ${malicious.verdict} (${malicious.metadata.backends?.length} backends), ${benign.verdict}`);
if (malicious.verdict !== "malicious" || benign.verdict !== "benign") process.exit(1);
TS

cat > check-upload.ts <<'TS'
import { gzipSync } from "node:zlib";
import { createEicarScanner, eicarBytes } from "@engine/core";
import { createUnpackingScanner } from "@engine/unpack";
import { createUploadGuard, memoryStorage } from "@engine/upload";

const storage = memoryStorage();
const guard = createUploadGuard({ scanner: createUnpackingScanner(createEicarScanner()), storage });
async function post(content: Uint8Array) {
  const form = new FormData();
  form.append("file", new Blob([new Uint8Array(content)]), "upload.bin");
  const request = new Request("http://localhost/upload", { method: "POST", body: form });
  if (!request.body) throw new Error("no body");
  return guard.handle({ headers: Object.fromEntries(request.headers), body: request.body });
}
const refused = await post(gzipSync(eicarBytes())); // EICAR inside a gzip: only unpacking finds it
const accepted = await post(Buffer.from("hello"));
console.log(`@engine/upload and @engine/unpack from their tarballs: ${refused.ok ? "accepted" : refused.problem.code}, ${accepted.ok ? "accepted" : accepted.problem.code}, ${storage.files.size} stored`);
if (refused.ok || !accepted.ok || storage.files.size !== 1) process.exit(1);
TS

"$tsc" -p .
for program in out/check-*.js; do node "$program"; done

# The same packages from CommonJS: require() and the .d.cts types.
mkdir commonjs
cat > commonjs/package.json <<'JSON'
{ "name": "pack-check-commonjs", "private": true, "type": "commonjs" }
JSON
cat > commonjs/tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
  "strict": true, "outDir": "out", "types": ["node"], "lib": ["ES2022", "ESNext.Disposable"] },
  "include": ["*.ts"] }
JSON
cat > commonjs/check-commonjs.ts <<'TS'
import { createClamavScanner } from "@engine/clamav";
import { startManagedClamd } from "@engine/clamav/managed";
import { artifactFromBytes, createEicarScanner, eicarBytes, EngineError } from "@engine/core";
import { conformanceChecks } from "@engine/core/conformance";
import { createMultiScanner } from "@engine/multi";
import { createUnpackingScanner } from "@engine/unpack";
import { createUploadGuard, memoryStorage } from "@engine/upload";
import { createYaraScanner } from "@engine/yara";

async function main(): Promise<void> {
  const guard = createUploadGuard({ scanner: createUnpackingScanner(createEicarScanner()), storage: memoryStorage() });
  if (guard.options.limits.files !== 10) process.exit(1);
  await using clamd = await startManagedClamd();
  await using engine = createMultiScanner([
    createEicarScanner(),
    createClamavScanner(clamd.clientOptions()),
    createYaraScanner(),
    createYaraScanner({ name: "yara-native", engine: "native" }),
  ]);
  const malicious = await engine.scan(artifactFromBytes(eicarBytes()));
  const benign = await engine.scan(artifactFromBytes("hello"));
  const backends = malicious.metadata.backends?.map((backend) => `${backend.name}:${backend.verdict}`);
  console.log(`CommonJS require() of every package: ${malicious.verdict} [${backends?.join(" ")}], ${benign.verdict}, ${conformanceChecks.length} conformance checks`);
  if (malicious.verdict !== "malicious" || benign.verdict !== "benign" || backends?.length !== 4) process.exit(1);
  if (!EngineError.isInstance(new EngineError({ message: "x" }))) process.exit(1);
}
main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
TS
(cd commonjs && "$tsc" -p . && grep -q 'require("@engine/core")' out/check-commonjs.js && node out/check-commonjs.js)
