#!/usr/bin/env bash
# Installs the pinned IAM simulator used by the Rust tests (tests/iam/simulate.mjs).
# Idempotent: `npm ci` runs only when package-lock.json changed since the last
# successful install (its hash is kept in node_modules/.nomos-lock-hash).
# Prints one progress line; exits non-zero with a message if node/npm are missing
# or the install fails.
set -euo pipefail

src="${BASH_SOURCE[0]}"
case "$src" in */*) here="${src%/*}" ;; *) here=. ;; esac
here="$(cd "$here" && pwd)"
stamp="$here/node_modules/.nomos-lock-hash"
min_node_major=20

die() { echo "tests/iam/install.sh: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || die "node not found on PATH (need Node.js >= $min_node_major; Debian: apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || die "npm not found on PATH (Debian: apt-get install npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge "$min_node_major" ] || die "node $(node --version) is too old; need >= $min_node_major"
[ -f "$here/package-lock.json" ] || die "missing $here/package-lock.json"

# Serialize concurrent callers (e.g. parallel test threads) when flock exists.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$here/.install.lock"
  flock 9
fi

lock_hash="$(node -e '
  const c = require("node:crypto"), fs = require("node:fs");
  process.stdout.write(c.createHash("sha256").update(fs.readFileSync(process.argv[1])).digest("hex"));
' "$here/package-lock.json")"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_hash" ]; then
  echo "tests/iam: simulator already installed (lock ${lock_hash:0:12})"
  exit 0
fi

log="$(mktemp "${TMPDIR:-/tmp}/iam-npm-ci.XXXXXX")"
trap 'rm -f "$log"' EXIT
if ! (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
  cat "$log" >&2
  die "npm ci failed in $here (is the npm registry reachable?)"
fi
printf '%s' "$lock_hash" >"$stamp"
echo "tests/iam: installed simulator with npm ci (lock ${lock_hash:0:12})"
