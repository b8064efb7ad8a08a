#!/usr/bin/env bash
# Runs the engine with its embedded default on a fresh Debian machine, then `microengine serve`
# with the arguments given: YARA with the bundled rules, plus ClamAV through a managed clamd.
#   - clamd: installed (Debian's clamav-daemon) when missing, as the test script does; its own
#     clamd and freshclam services are not needed. START_SKIP_CLAMAV=1 skips that (YARA alone).
#   - pnpm at the pinned version, and the workspace: installed when missing or when a lockfile
#     or package.json changed (node_modules/.engine-start/install.sha256 remembers);
#   - a build when the sources changed since the last one (node_modules/.engine-start/build.sha256;
#     outside a git checkout it always builds, which turbo's cache keeps short).
# Quiet on success: what the steps print goes to node_modules/.engine-start/start.log (before the
# workspace exists, a temporary file), shown when a step fails.
set -Eeuo pipefail
cd "$(dirname "$0")/.."

state=node_modules/.engine-start
log=$(mktemp "${TMPDIR:-/tmp}/engine-start.XXXXXX")
step=""
failed() {
  echo "start: $step failed; what it printed ($log):" >&2
  tail -n 40 "$log" >&2
  exit 1
}
trap failed ERR
run() { # run <what> <command...>: says what, runs it quietly into the log
  step=$1
  shift
  echo "start: $step" >&2
  "$@" >>"$log" 2>&1
}
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ "${START_SKIP_CLAMAV:-}" != "1" ] && ! command -v clamd >/dev/null 2>&1 && [ ! -x /usr/sbin/clamd ]; then
  run "installing clamd (Debian's clamav-daemon; START_SKIP_CLAMAV=1 skips it)" \
    as_root apt-get update -qq
  run "installing clamd (Debian's clamav-daemon; START_SKIP_CLAMAV=1 skips it)" \
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clamav-daemon
fi

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  run "installing pnpm@$pnpm_version with npm" \
    as_root npm install --global --no-audit --no-fund "pnpm@$pnpm_version"
fi

# What the install depends on: the lockfile, every package.json, Node's version.
install_sum=$({
  node --version
  cat pnpm-lock.yaml pnpm-workspace.yaml package.json packages/*/package.json apps/*/package.json
  cat .npmrc 2>/dev/null || true
} | sha256sum | cut -d' ' -f1)
if [ "$(cat "$state/install.sha256" 2>/dev/null || true)" != "$install_sum" ]; then
  run "installing the workspace (pnpm install)" pnpm install --frozen-lockfile
  mkdir -p "$state"
  echo "$install_sum" >"$state/install.sha256"
  rm -f "$state/build.sha256"
fi
mkdir -p "$state"
mv "$log" "$state/start.log"
log="$state/start.log"

# What the build depends on: the commit, every change to tracked files, and the names and
# contents of new (untracked, not ignored) files.
build_sum=""
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  build_sum=$({
    echo "$install_sum"
    git rev-parse HEAD
    git diff HEAD
    git ls-files --others --exclude-standard -z | xargs -0 -r sha256sum -- 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1)
fi
missing_dist=""
for package in packages/*/ apps/*/; do
  # a tsup package without its dist (deleted, or never built)
  if grep -q '"build": "tsup' "$package/package.json" 2>/dev/null && [ ! -d "$package/dist" ]; then missing_dist=yes; fi
done
if [ -z "$build_sum" ] || [ -n "$missing_dist" ] ||
  [ "$(cat "$state/build.sha256" 2>/dev/null || true)" != "$build_sum" ]; then
  run "building (pnpm build)" pnpm build
  [ -z "$build_sum" ] || echo "$build_sum" >"$state/build.sha256"
fi

trap - ERR
exec node apps/microengine/bin/microengine.cjs serve "$@"
