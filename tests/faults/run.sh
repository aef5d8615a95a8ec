#!/usr/bin/env bash
# Fault suite (issue 9): builds the debug binary, then runs tests/faults/faults.py, which
# starts its own MariaDB, SMTP sink and webhook receiver on 127.0.0.1 and breaks each of
# them under load, then sends SIGTERM under load. Bounded to 6 minutes.
# Usage: tests/faults/run.sh [--only a,b,c,d] [--keep]
set -euo pipefail
cd "$(dirname "$0")/../.."
target="${CARGO_TARGET_DIR:-target}"
cargo build --locked --bin gotrue
exec timeout 360 python3 tests/faults/faults.py --bin "$target/debug/gotrue" "$@"
