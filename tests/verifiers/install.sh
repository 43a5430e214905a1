#!/usr/bin/env bash
# Install the independent token verifiers used by the integration tests:
#   tests/verifiers/.venv          Python venv with PyJWT + cryptography (requirements.txt)
#   tests/verifiers/node_modules   the `jose` package (package-lock.json, via npm ci)
#
# Idempotent: a second run with unchanged pins does no network work.
# Non-interactive; as root on Debian/Ubuntu it installs missing system packages
# (python3, python3-venv, nodejs, npm) with apt-get.
#
# Environment:
#   PYTHON   interpreter used to create the venv (default: python3)
#   FORCE=1  rebuild the venv and node_modules even if they look current
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"
FORCE="${FORCE:-0}"

step() { printf '[verifiers] %s\n' "$*"; }
die() { printf '[verifiers] error: %s\n' "$*" >&2; exit 1; }

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing $*; no apt-get here, install them by hand"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "missing $*; run as root or install them by hand"
    sudo="sudo -n"
  fi
  export DEBIAN_FRONTEND=noninteractive
  if [ "$APT_UPDATED" -eq 0 ]; then
    step "apt-get update"
    $sudo apt-get update -qq
    APT_UPDATED=1
  fi
  step "apt-get install $*"
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

hash_of() { sha256sum "$1" | cut -d' ' -f1; }

# --- Python -----------------------------------------------------------------
step "python: checking interpreter ($PYTHON)"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  # Debian splits venv/ensurepip into python3-venv.
  apt_install python3-venv
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "$PYTHON has no working venv module (try PYTHON=/usr/bin/python3)"
fi

if [ "$FORCE" = 1 ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
  step "python: creating venv at $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
else
  step "python: reusing venv at $VENV"
fi

REQ_HASH="$(hash_of "$HERE/requirements.txt")"
if [ "$FORCE" != 1 ] \
  && [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null || true)" = "$REQ_HASH" ] \
  && "$VENV/bin/python" -c 'import jwt, cryptography' >/dev/null 2>&1; then
  step "python: requirements.txt already installed"
else
  step "python: pip install -r requirements.txt"
  rm -f "$VENV/.requirements.sha256"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --prefer-binary -r "$HERE/requirements.txt"
  printf '%s\n' "$REQ_HASH" > "$VENV/.requirements.sha256"
fi

# --- Node -------------------------------------------------------------------
step "node: checking node and npm"
if ! command -v node >/dev/null 2>&1; then
  apt_install nodejs npm
elif ! command -v npm >/dev/null 2>&1; then
  apt_install npm
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
[ "$NODE_MAJOR" -ge 18 ] || die "node $(node --version) is too old; jose needs node 18 or newer"

LOCK_HASH="$(hash_of "$HERE/package-lock.json")"
if [ "$FORCE" != 1 ] \
  && [ "$(cat "$HERE/node_modules/.lock.sha256" 2>/dev/null || true)" = "$LOCK_HASH" ] \
  && [ -f "$HERE/node_modules/jose/package.json" ]; then
  step "node: package-lock.json already installed"
else
  step "node: npm ci"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$LOCK_HASH" > "$HERE/node_modules/.lock.sha256"
fi

# --- Smoke check --------------------------------------------------------------
PY_VERSIONS="$("$VENV/bin/python" -c 'import jwt, cryptography; print(f"PyJWT {jwt.__version__}, cryptography {cryptography.__version__}")')"
JOSE_VERSION="$(cd "$HERE" && node -p 'require("./node_modules/jose/package.json").version')"
step "ready: $PY_VERSIONS (python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')); jose $JOSE_VERSION (node $(node --version))"
step "run: $VENV/bin/python $HERE/verify_pyjwt.py JWKS_URL ISSUER AUDIENCE TOKEN"
step "run: node $HERE/verify_jose.mjs JWKS_URL ISSUER AUDIENCE TOKEN"
