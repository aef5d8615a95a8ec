#!/usr/bin/env bash
# schemathesis against the live server: validates openapi.json (openapi-spec-validator),
# starts the debug binary on SQLite in a fresh temporary directory (cheap argon2, rate limits
# off), seeds a confirmed admin user and logs it in so the authenticated endpoints are
# exercised, then runs schemathesis with bounded examples and time, checking that no answer
# is a server error and every answer matches the document. Bounded to about 5 minutes.
#
# The venv lives in ${GOTRUE_SCHEMATHESIS_CACHE:-~/.cache/gotrue-schemathesis} and is reused
# while e2e/schemathesis-requirements.txt is unchanged. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_DIR="$(pwd)"
REQS="$REPO_DIR/e2e/schemathesis-requirements.txt"
CACHE="${GOTRUE_SCHEMATHESIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gotrue-schemathesis}"
VENV="$CACHE/venv"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-40}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-120}"

step() { printf '\n== %s\n' "$*"; }

if [ ! -x "$VENV/bin/schemathesis" ] || ! cmp -s "$REQS" "$VENV/requirements.txt"; then
  step "creating the schemathesis venv in $CACHE"
  rm -rf "$VENV"
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  timeout 300 "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQS"
  cp "$REQS" "$VENV/requirements.txt"
fi

step "openapi-spec-validator openapi.json"
"$VENV/bin/openapi-spec-validator" openapi.json

step "cargo build --bin gotrue"
timeout 1200 cargo build --locked --bin gotrue
BIN="${CARGO_TARGET_DIR:-$REPO_DIR/target}/debug/gotrue"

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"
export GOTRUE_API_HOST=127.0.0.1 PORT="$PORT" GOTRUE_DB_DRIVER=sqlite DATABASE_URL="$WORK/gotrue.db" GOTRUE_DB_AUTOMIGRATE=true
export GOTRUE_JWT_SECRET="schemathesis-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"
export GOTRUE_JWT_AUD=api.netlify.com GOTRUE_SITE_URL=http://localhost:8080 GOTRUE_LOG_LEVEL=warn
export GOTRUE_PASSWORD_ARGON2_MEMORY_KIB=64 GOTRUE_PASSWORD_ARGON2_ITERATIONS=1 GOTRUE_PASSWORD_BCRYPT_COST=4
export GOTRUE_API_EXPORT_SECRET=schemathesis-export
for l in TOKEN SIGNUP RECOVER VERIFY INVITE USER ADMIN EMAIL_SENT; do export "GOTRUE_RATE_LIMIT_$l=0"; done
unset GOTRUE_RATE_LIMIT_HEADER GOTRUE_RATE_LIMIT_REDIS_URL GOTRUE_MULTI_INSTANCE_MODE || true

export GOTRUE_OPERATOR_TOKEN="operator-$(python3 -c 'import secrets; print(secrets.token_hex(24))')"

USER_AUD=schemathesis.example
step "seeding a confirmed user (audience $USER_AUD)"
USER_PASSWORD="schemathesis user passphrase"
"$BIN" admin createuser --confirm -a "$USER_AUD" user@example.com "$USER_PASSWORD" >/dev/null

step "starting $BIN on $BASE"
"$BIN" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/health" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; echo "the server exited"; exit 1; }
  sleep 0.1
done
curl -fsS "$BASE/health" >/dev/null

export ST_USER_TOKEN
ST_USER_TOKEN="$(curl -fsS -X POST "$BASE/token" -H "X-JWT-AUD: $USER_AUD" --data-urlencode grant_type=password \
  --data-urlencode username=user@example.com --data-urlencode "password=$USER_PASSWORD" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

step "schemathesis (at most $MAX_EXAMPLES examples per operation, ${MAX_TIME}s)"
status=0
# The operator endpoints exist only in multi-instance mode; the stateful phase needs links
# the document does not declare. One worker: concurrent schema walking trips a CPython 3.11
# ast.parse race ("AST constructor recursion depth mismatch").
# Run from the temporary directory: schemathesis keeps a crash cache in the working directory.
(cd "$WORK" && timeout $((MAX_TIME + 90)) "$VENV/bin/schemathesis" --config-file "$REPO_DIR/e2e/schemathesis.toml" --no-color run "$BASE/openapi.json" \
  --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing \
  --exclude-tag operator \
  --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" \
  --request-timeout 10 --workers 1 --seed "${SCHEMATHESIS_SEED:-20261128}") || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "the server died during the run"; status=1
fi
if grep -q '"level":"ERROR"\|panicked' "$WORK/server.log"; then
  echo "server errors logged:"; grep '"level":"ERROR"\|panicked' "$WORK/server.log" | head -20; status=1
fi
if [ "$status" -ne 0 ]; then echo "schemathesis: FAILED"; exit "$status"; fi
echo "schemathesis: passed"
