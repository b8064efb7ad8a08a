#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine with Node 20, when it is missing:
#   - Debian packages: clamav-daemon + clamdscan (real clamd for integration tests and the
#     ClamAV benchmark), yara (differential tests and benchmark), redis-server (queue mode),
#     7zip, xorriso, genisoimage, gcab, lzip, brotli, zstd, bzip2, xz-utils (archives for
#     @engine/unpack's tests; genisoimage writes ISO/UDF bridge images),
#     libyara-dev + g++/make (to build @engine/yara-native, the native YARA engine), zip
#     (password-protected archives for the fail-closed tests), prometheus (promtool checks the
#     alert rules in deploy/), chromium (a real browser for @engine/upload's example page);
#   - pnpm, at the exact version pinned in package.json's "packageManager" (corepack's
#     download fails signature checks on some machines, so npm installs it);
#   - the workspace's node modules, from the lockfile.
# Safe to run again: it only installs what is not there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "install-test-dependencies: need root (or sudo) to run: $*" >&2
    return 1
  fi
}

missing=()
command -v clamd >/dev/null 2>&1 || [ -x /usr/sbin/clamd ] || missing+=(clamav-daemon)
command -v clamdscan >/dev/null 2>&1 || missing+=(clamdscan)
command -v yara >/dev/null 2>&1 || missing+=(yara)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v zip >/dev/null 2>&1 || missing+=(zip)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool checks deploy/prometheus
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)  # systemd-analyze verify checks deploy/systemd
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # @engine/upload's example, driven by playwright-core
# Archive writers for @engine/unpack's fixtures (archives made by real tools in the tests).
command -v 7zz >/dev/null 2>&1 || missing+=(7zip)
command -v xorriso >/dev/null 2>&1 || missing+=(xorriso)
command -v genisoimage >/dev/null 2>&1 || missing+=(genisoimage)
command -v gcab >/dev/null 2>&1 || missing+=(gcab)
command -v lzip >/dev/null 2>&1 || missing+=(lzip)
command -v brotli >/dev/null 2>&1 || missing+=(brotli)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
command -v bzip2 >/dev/null 2>&1 || missing+=(bzip2)
command -v xz >/dev/null 2>&1 || missing+=(xz-utils)
[ -f /usr/include/yara.h ] || missing+=(libyara-dev)  # builds @engine/yara-native (the native YARA engine)
command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || missing+=(g++ make)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-test-dependencies: installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pnpm_version=$(node -p 'require("./package.json").packageManager.split("@")[1]')
if [ "$(pnpm --version 2>/dev/null || true)" != "$pnpm_version" ]; then
  echo "install-test-dependencies: installing pnpm@$pnpm_version with npm"
  as_root npm install --global --no-audit --no-fund "pnpm@$pnpm_version" >/dev/null
fi

pnpm install --frozen-lockfile
