#!/usr/bin/env bash
# Install the benchmark peer's node dependencies exactly as locked.
# Idempotent: skips `npm ci` when node_modules/.lock-sha256 matches the
# sha256 of package-lock.json. Prints exactly one progress line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

for tool in node npm sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || { echo "peer install: $tool not found" >&2; exit 1; }
done

stamp="node_modules/.lock-sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "peer install: node_modules up to date (lock ${want:0:12})"
  exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! npm ci --no-audit --no-fund --loglevel=error >"$log" 2>&1; then
  cat "$log" >&2
  echo "peer install: npm ci failed" >&2
  exit 1
fi
printf '%s\n' "$want" >"$stamp"
version="$(node -p "require('./node_modules/oidc-provider/package.json').version")"
echo "peer install: npm ci done, oidc-provider $version (lock ${want:0:12})"
