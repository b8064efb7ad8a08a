#!/usr/bin/env bash
# Packs each published package, installs the tarball in an empty project outside the
# workspace (dependencies come from the npm registry, as for a user), and typechecks and
# runs a ten-line TypeScript program against it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tsc="$root/node_modules/.bin/tsc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd packages/core && pnpm pack --pack-destination "$work" >/dev/null)
cd "$work"
cat > package.json <<'JSON'
{ "name": "pack-check", "private": true, "type": "module" }
JSON
npm install --no-audit --no-fund --loglevel=error ./engine-core-*.tgz @types/node@20 >/dev/null
cat > tsconfig.json <<'JSON'
{ "compilerOptions": { "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
  "strict": true, "outDir": "out", "types": ["node"], "lib": ["ES2022", "ESNext.Disposable"] },
  "files": ["check.ts"] }
JSON
cat > check.ts <<'TS'
import { artifactFromBytes, createEicarScanner, eicarBytes, type ScanResult } from "@engine/core";

await using scanner = createEicarScanner();
const results: ScanResult[] = [];
for (const content of [eicarBytes(), Buffer.from("hello")]) {
  results.push(await scanner.scan(artifactFromBytes(content)));
}
console.log(`@engine/core from its tarball: ${results.map((result) => result.verdict).join(", ")}`);
if (results[0]?.verdict !== "malicious" || results[1]?.verdict !== "benign") process.exit(1);
TS
"$tsc" -p .
node out/check.js
