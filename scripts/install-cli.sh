#!/usr/bin/env bash
# Puts `microengine` on the PATH: writes a small launcher for this checkout's
# apps/microengine/bin/microengine.cjs into <prefix>/bin (default /usr/local as root, else
# ~/.local), and says when that directory is not on the PATH. Run ./scripts/start.sh (or
# `pnpm install && pnpm build`) first. Usage: scripts/install-cli.sh [prefix]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

if [ "$(id -u)" -eq 0 ]; then default_prefix=/usr/local; else default_prefix="$HOME/.local"; fi
bin="${1:-$default_prefix}/bin"
if [ ! -f "$root/apps/microengine/dist/cli.js" ]; then
  echo "install-cli: $root is not built yet: run ./scripts/start.sh or pnpm install && pnpm build first" >&2
  exit 1
fi
mkdir -p "$bin"
launcher="$bin/microengine"
quoted=$(printf '%s' "$root/apps/microengine/bin/microengine.cjs" | sed "s/'/'\\\\''/g") # for sh's '...'
# node's flags: those of bin/microengine.cjs's first line (see there).
printf '#!/bin/sh\n# microengine from this checkout (written by scripts/install-cli.sh)\nexec node --initial-old-space-size=64 '"'"'%s'"'"' "$@"\n' \
  "$quoted" >"$launcher.partial"
chmod 755 "$launcher.partial"
mv "$launcher.partial" "$launcher"
echo "install-cli: wrote $launcher"
case ":$PATH:" in
*":$bin:"*) ;;
*) echo "install-cli: $bin is not on your PATH; add it, e.g.: export PATH=\"$bin:\$PATH\"" >&2 ;;
esac
