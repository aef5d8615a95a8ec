#!/usr/bin/env bash
# One command for the load benchmark: builds the release binary, then bench.py seeds,
# serves and measures (see bench.py --help). Results land in bench/results/.
# Extra arguments go to bench.py, e.g. `bench/run.sh --backends sqlite --duration 3 --runs 1`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib || echo "no matplotlib: the chart is skipped"
cargo build --release --bin gotrue --example hash_ceiling
exec python3 bench/bench.py "$@"
