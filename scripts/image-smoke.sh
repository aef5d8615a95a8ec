#!/usr/bin/env bash
# The container image's stages without a container engine (none can run on machines
# without a usable cgroup setup, such as the CI host): builds the release binary as the
# Dockerfile's build stage does, installs it and the entrypoint into a staging root laid
# out like the runtime stage (/usr/local/bin, /var/lib/gotrue owned by uid 10001), then,
# as uid 10001 when started as root (as USER 10001:10001 in the image), runs
# `gotrue migrate` the way upstream's users call it (`docker run IMAGE gotrue migrate`),
# serves with the default command, and checks /health and /ready and a clean SIGTERM exit.
#
# Usage: scripts/image-smoke.sh            (release build, as in the image)
#        GOTRUE_BIN=path/to/gotrue scripts/image-smoke.sh   (skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."

UID_IN_IMAGE=10001
step() { printf '== %s\n' "$*"; }
fail() { printf 'image-smoke: FAILED: %s\n' "$*" >&2; exit 1; }

# The build stage sees only what its COPY lines bring in (and .dockerignore lets through):
# build from a context holding exactly that, so a file the build needs but the image
# leaves out fails here as it would in `docker build`.
build_stage_sources() {
  sed -n '/^FROM .* AS build/,/^FROM /p' Dockerfile | awk '$1 == "COPY" && $2 !~ /^--from/ { for (i = 2; i < NF; i++) print $i }'
}
if [ -z "${GOTRUE_BIN:-}" ]; then
  CONTEXT="$(mktemp -d)"
  for src in $(build_stage_sources); do
    grep -qx "!$src" .dockerignore || fail "the Dockerfile copies $src but .dockerignore leaves it out"
    cp -a "$src" "$CONTEXT/"
  done
  step "build stage (context: $(build_stage_sources | tr '\n' ' ')): cargo build --release --locked --bin gotrue"
  TARGET="$(cd "${CARGO_TARGET_DIR:-target}" 2>/dev/null && pwd || echo "$PWD/target")"
  commit="$(git rev-parse HEAD 2>/dev/null || true)"
  (cd "$CONTEXT" && GOTRUE_GIT_COMMIT="$commit" CARGO_TARGET_DIR="$TARGET" cargo build --release --locked --bin gotrue) \
    || { rm -rf "$CONTEXT"; fail "the build stage failed"; }
  rm -rf "$CONTEXT"
  GOTRUE_BIN="$TARGET/release/gotrue"
fi
[ -x "$GOTRUE_BIN" ] || fail "no binary at $GOTRUE_BIN"

STAGE="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$STAGE"
}
trap cleanup EXIT

step "runtime stage: staging root $STAGE"
install -d "$STAGE/usr/local/bin"
install -m 0755 "$GOTRUE_BIN" "$STAGE/usr/local/bin/gotrue"
# The entrypoint execs /usr/local/bin/gotrue; point it at the staged binary.
sed "s#/usr/local/bin/gotrue#$STAGE/usr/local/bin/gotrue#g" docker/entrypoint.sh > "$STAGE/usr/local/bin/docker-entrypoint"
chmod 0755 "$STAGE/usr/local/bin/docker-entrypoint"
DATA="$STAGE/var/lib/gotrue"
install -d -m 0750 "$DATA"

AS_USER=()
if [ "$(id -u)" = 0 ]; then
  chmod 0755 "$STAGE" "$STAGE/var" "$STAGE/var/lib" "$STAGE/usr" "$STAGE/usr/local" "$STAGE/usr/local/bin"
  chown "$UID_IN_IMAGE:$UID_IN_IMAGE" "$DATA"
  AS_USER=(setpriv --reuid="$UID_IN_IMAGE" --regid="$UID_IN_IMAGE" --clear-groups)
fi

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
# The image's environment (ENV), except that the smoke test listens on loopback only.
IMAGE=(env -i PATH=/usr/bin:/bin HOME="$DATA" GOTRUE_API_HOST=127.0.0.1 PORT="$PORT" \
  "${AS_USER[@]}" "$STAGE/usr/local/bin/docker-entrypoint")
run() { (cd "$DATA" && exec "${IMAGE[@]}" "$@"); }

step "docker run IMAGE gotrue migrate"
run gotrue migrate || fail "gotrue migrate"
[ -f "$DATA/gotrue.db" ] || fail "migrate did not create the SQLite database in the data volume"
step "docker run IMAGE migrate (idempotent, without the program name)"
run migrate >/dev/null || fail "second migrate"

step "docker run IMAGE (default command: serve) on 127.0.0.1:$PORT"
(cd "$DATA" && exec "${IMAGE[@]}" serve) >"$STAGE/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$STAGE/serve.log" >&2; fail "the server exited"; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/health" | grep -q '"name":"GoTrue"' || { cat "$STAGE/serve.log" >&2; fail "/health"; }
curl -fsS "http://127.0.0.1:$PORT/ready" | grep -q '"status":"ok"' || { cat "$STAGE/serve.log" >&2; fail "/ready"; }
if [ "$(id -u)" = 0 ]; then
  owner="$(stat -c %u "$DATA/gotrue.db")"
  [ "$owner" = "$UID_IN_IMAGE" ] || fail "the database belongs to uid $owner, not the image's user"
  pid_uid="$(ps -o uid= -p "$SERVER_PID" | tr -d ' ' || true)"
  [ -z "$pid_uid" ] || [ "$pid_uid" = "$UID_IN_IMAGE" ] || fail "the server runs as uid $pid_uid"
fi

step "SIGTERM: clean exit"
kill -TERM "$SERVER_PID"
status=0
for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$SERVER_PID" 2>/dev/null; then fail "the server did not stop on SIGTERM"; fi
wait "$SERVER_PID" || status=$?
SERVER_PID=""
[ "$status" = 0 ] || { cat "$STAGE/serve.log" >&2; fail "exit status $status after SIGTERM"; }
step "image smoke test passed"
