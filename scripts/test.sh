#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, builds, lints
# (biome, publint, arethetypeswrong), typechecks, runs unit and integration tests, checks that
# the packed packages install and run outside the workspace, and prints one summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install-test-dependencies.sh

export ENGINE_TEST_REPORT_DIR="$root/.vitest-results"
rm -rf "$ENGINE_TEST_REPORT_DIR"
mkdir -p "$ENGINE_TEST_REPORT_DIR"

pnpm build
pnpm lint
pnpm typecheck
pnpm test
pnpm test:int
scripts/check-pack.sh
node scripts/summarize-tests.mjs "$ENGINE_TEST_REPORT_DIR"
