#!/usr/bin/env bash
# Runs the engine with its embedded default on a fresh machine: installs pnpm and the
# workspace when missing, builds, then `microengine serve` with the arguments given
# (YARA with the bundled rules, plus ClamAV through a managed clamd when clamd is installed).
set -euo pipefail
cd "$(dirname "$0")/.."

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "start: installing pnpm@$pnpm_version with npm" >&2
  if [ "$(id -u)" -eq 0 ]; then npm install --global --no-audit --no-fund "pnpm@$pnpm_version" >/dev/null
  else sudo npm install --global --no-audit --no-fund "pnpm@$pnpm_version" >/dev/null; fi
fi
pnpm install --frozen-lockfile >&2
pnpm build >&2
exec node apps/microengine/bin/microengine.cjs serve "$@"
