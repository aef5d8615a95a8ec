#!/usr/bin/env bash
# Admin user list under a large table: seeds 100,000 users straight into the database (one
# precomputed password hash for all of them), starts the release server on 127.0.0.1 and
# measures GET /admin/users page 1 and two searches (`filter=`), printing p50/p99 latency.
#
# Load generator: wrk (`apt-get install wrk`), for a bounded time per run. By default one
# connection, so the figures are the latency of a request, not of a queue; raise CONNECTIONS
# to see throughput.
# Engines: SQLite always; MariaDB/MySQL when reachable (a scratch database is created and
# dropped). Not part of CI: run it by hand, `bench/admin_list.sh`.
#
# Settings (environment): USERS (100000), DURATION (seconds per run, 10), CONNECTIONS (1),
# THREADS (1), MYSQL_HOST (127.0.0.1), MYSQL_PORT (3306), MYSQL_USER (root), MYSQL_PWD.
set -euo pipefail
cd "$(dirname "$0")/.."

USERS=${USERS:-100000}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-1}
THREADS=${THREADS:-1}
MYSQL_HOST=${MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${MYSQL_PORT:-3306}
MYSQL_USER=${MYSQL_USER:-root}
export MYSQL_PWD=${MYSQL_PWD:-}
AUD=api.netlify.com
SECRET=bench-secret-bench-secret-bench-secret

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

echo "== building the release binary"
cargo build --release --locked --bin gotrue
BIN="${CARGO_TARGET_DIR:-target}/release/gotrue"

WORK=$(mktemp -d)
SERVER_PID=""
SCRATCH_DB=""
mysql_cli() { mysql --protocol=tcp -h"$MYSQL_HOST" -P"$MYSQL_PORT" -u"$MYSQL_USER" "$@"; }
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [ -n "$SCRATCH_DB" ]; then mysql_cli -e "DROP DATABASE IF EXISTS \`$SCRATCH_DB\`" || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The binary's environment: nothing inherited but PATH and HOME, plus the engine's settings.
gt_env() {
  GT_ENV=(PATH="$PATH" HOME="${HOME:-/tmp}" GOTRUE_DB_DRIVER="$DRIVER" DATABASE_URL="$DB_URL"
    GOTRUE_JWT_SECRET="$SECRET" GOTRUE_JWT_AUD="$AUD" GOTRUE_LOG_LEVEL=warn GOTRUE_API_HOST=127.0.0.1
    GOTRUE_RATE_LIMIT_ADMIN=0)
}

# Prints a HS256 JWT for `sub`.
jwt() {
  python3 - "$1" "$SECRET" "$AUD" <<'EOF'
import base64, hashlib, hmac, json, sys
sub, secret, aud = sys.argv[1:4]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": sub, "aud": aud, "exp": 4000000000}).encode())
sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
EOF
}

# Inserts the seed rows (SQLite) or writes them as SQL (MySQL); the admin the CLI created is
# the first user, and its password hash is every other user's.
seed() {
  python3 - "$DRIVER" "$DB_URL" "$USERS" "$AUD" "$HASH" <<'EOF'
import datetime, json, sys, uuid
driver, url, n, aud, pw = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
base = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
nil = "00000000-0000-0000-0000-000000000000"
def ts(i):
    t = base + datetime.timedelta(seconds=i)
    return t.isoformat() if driver == "sqlite" else t.strftime("%Y-%m-%d %H:%M:%S")
def row(i):
    email = f"user{i}@example.com"
    name = f"Person {i}"
    return (nil, str(uuid.uuid4()), aud, "", email, email, name.lower(), pw, ts(i), "", "", "", "",
            json.dumps({"provider": "email"}), json.dumps({"full_name": name}), 0, ts(i), ts(i))
# name_key is what the server writes beside user_metadata (full_name, lower-cased).
cols = ("instance_id, id, aud, role, email, email_key, name_key, encrypted_password, confirmed_at, confirmation_token, "
        "recovery_token, email_change_token, email_change, raw_app_meta_data, raw_user_meta_data, is_super_admin, "
        "created_at, updated_at")
if driver == "sqlite":
    import sqlite3
    db = sqlite3.connect(url)
    db.executemany(f"INSERT INTO users ({cols}) VALUES ({', '.join('?' * 18)})", (row(i) for i in range(1, n)))
    db.commit()
    db.execute("ANALYZE")
    db.commit()
else:
    q = lambda v: str(v) if isinstance(v, int) else "'" + v.replace("\\", "\\\\").replace("'", "''") + "'"
    out = sys.stdout
    for start in range(1, n, 1000):
        rows = ",".join("(" + ",".join(q(v) for v in row(i)) + ")" for i in range(start, min(start + 1000, n)))
        out.write(f"INSERT INTO users ({cols}) VALUES {rows};\n")
    out.write("ANALYZE TABLE users;\n")
EOF
}

# Prints "p50 p99" of one wrk run against `path`.
measure() {
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$1" |
    tee "$WORK/wrk.out" |
    awk '/^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Requests\/sec/ {rps=$2} /Non-2xx/ {bad=$4} END {printf "p50 %-9s p99 %-9s req/s %-9s%s\n", p50, p99, rps, (bad ? "  NON-2XX: " bad : "")}'
}

run_engine() {
  echo "== $1: migrating and seeding $USERS users"
  gt_env
  env -i "${GT_ENV[@]}" "$BIN" migrate >/dev/null
  env -i "${GT_ENV[@]}" "$BIN" admin createuser bench-admin@example.com bench-password --superadmin --confirm >/dev/null
  local start=$SECONDS
  if [ "$DRIVER" = sqlite ]; then
    HASH=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT encrypted_password FROM users").fetchone()[0])' "$DB_URL")
    ADMIN_ID=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT id FROM users").fetchone()[0])' "$DB_URL")
    seed
  else
    HASH=$(mysql_cli -N -B "$SCRATCH_DB" -e "SELECT encrypted_password FROM users")
    ADMIN_ID=$(mysql_cli -N -B "$SCRATCH_DB" -e "SELECT id FROM users")
    seed | mysql_cli "$SCRATCH_DB" >/dev/null
  fi
  echo "   seeded in $((SECONDS - start)) s"
  TOKEN=$(jwt "$ADMIN_ID")
  PORT=$(free_port)
  # env execs the server, so $! is the server itself.
  env -i "${GT_ENV[@]}" PORT="$PORT" "$BIN" serve >"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local total
  total=$(curl -fsS -o /dev/null -D - -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/admin/users" | awk -F': ' 'tolower($1)=="x-total-count" {print $2}' | tr -d '\r')
  echo "   X-Total-Count: $total"
  for path in "/admin/users" "/admin/users?filter=user4242" "/admin/users?filter=person%20777"; do
    curl -fsS -o /dev/null -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path"
    printf "   %-34s " "$path"
    measure "$path"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores (load average $(cut -d' ' -f1-3 /proc/loadavg)), wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s"

DRIVER=sqlite
DB_URL="$WORK/bench.db"
run_engine SQLite

if mysql_cli -e "SELECT 1" >/dev/null 2>&1; then
  SCRATCH_DB="gt_bench_$(python3 -c 'import uuid; print(uuid.uuid4().hex[:12])')"
  mysql_cli -e "CREATE DATABASE \`$SCRATCH_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
  DRIVER=mysql
  DB_URL="mysql://$MYSQL_USER${MYSQL_PWD:+:$MYSQL_PWD}@$MYSQL_HOST:$MYSQL_PORT/$SCRATCH_DB"
  run_engine "$(mysql_cli -N -B -e 'SELECT VERSION()')"
else
  echo "== MySQL/MariaDB not reachable at $MYSQL_HOST:$MYSQL_PORT; skipped"
fi
