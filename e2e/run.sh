#!/usr/bin/env bash
# The end-to-end suite in one command: gotrue-js (1.0 and 0.9) in Node, then
# netlify-identity-widget in Debian's Chromium behind nginx, against the release binary.
# Installs what is missing (npm ci; chromium and nginx from Debian), builds the binary,
# exits non-zero on any failure. Every step is time-bounded.
set -euo pipefail
cd "$(dirname "$0")"
E2E_DIR="$(pwd)"
REPO_DIR="$(cd .. && pwd)"

step() { printf '\n== %s\n' "$*"; }

missing=()
command -v chromium >/dev/null 2>&1 || [ -x "${CHROMIUM_BIN:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  timeout 900 apt-get update -qq
  timeout 1200 apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  timeout 600 npm ci --no-audit --no-fund
fi

step "cargo build --release"
(cd "$REPO_DIR" && timeout 2400 cargo build --release --locked --bin gotrue)
export GOTRUE_BIN="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/gotrue"

rm -rf "$E2E_DIR/artifacts"
status=0
step "gotrue-js 1.0 and 0.9 against the server"
timeout 300 node --test --test-reporter=spec tests/gotrue-js.test.mjs || status=1
step "netlify-identity-widget in Chromium behind nginx"
timeout 600 node --test --test-reporter=spec tests/widget.test.mjs || status=1

if [ "$status" -ne 0 ]; then
  echo "e2e: FAILED (screenshots and logs, if any, in e2e/artifacts/)"
else
  echo "e2e: all passed"
fi
exit "$status"
