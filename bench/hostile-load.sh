#!/usr/bin/env bash
# The latency of a cheap call (GetSweep) while a hostile client attacks the
# coordinator: 64 WatchSweep streams at 100 ms on a 100,000-job sweep, two
# threads submitting specs just under the 1 MiB limit, and 32 half-sent
# connections on each port (bench/hostile_client.py, grpcio from the proto).
# SQLite, then PostgreSQL, each on a fresh database. Prints one JSON object
# per backend. Needs the Python of `scripts/setup.sh --tests`.
# Usage: bash bench/hostile-load.sh [seconds of attack, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
bin=target/release/widesweep
[ -x "$bin" ] || cargo build --release --locked -p widesweep
python=${WIDESWEEP_PYTHON:-/opt/widesweep-python/bin/python}
pg_admin=${WIDESWEEP_BENCH_PG:-postgres://postgres@127.0.0.1:5432}
tmp=$(mktemp -d)
coordinator=
trap '[ -n "$coordinator" ] && kill "$coordinator" 2>/dev/null; rm -rf "$tmp"' EXIT

# 100,000 jobs: 10 widths x 10,000 seeds.
seeds=$(seq -s ', ' 1 10000)
cat > "$tmp/big.toml" <<SPEC
name = "big"
dataset = "mnist"
seeds = [$seeds]
[recipe]
epochs = 2
lr_milestones = [1]
[grid]
depth = [10]
width = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
SPEC

for backend in sqlite postgres; do
    if [ "$backend" = sqlite ]; then
        db="sqlite://$tmp/hostile.db"
    else
        psql "$pg_admin/postgres" -qc "DROP DATABASE IF EXISTS widesweep_hostile" -qc "CREATE DATABASE widesweep_hostile"
        db="$pg_admin/widesweep_hostile"
    fi
    "$bin" serve --db "$db" --listen 127.0.0.1:50071 --http 127.0.0.1:50072 --token bench-token \
        --artifacts "$tmp/artifacts" --idle-timeout-seconds 10 >"$tmp/$backend.log" 2>&1 &
    coordinator=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/50071) 2>/dev/null && break; sleep 0.1; done
    "$bin" submit "$tmp/big.toml" --allow-large --coordinator http://127.0.0.1:50071 --token bench-token >/dev/null
    echo "== $backend: 100,000 jobs, $seconds s of attack"
    PYTHONPATH=python/src "$python" bench/hostile_client.py --url http://127.0.0.1:50071 --token bench-token \
        --sweep big --http 127.0.0.1:50072 --seconds "$seconds" --idle-timeout 10
    kill "$coordinator"
    wait "$coordinator" 2>/dev/null || true
    coordinator=
done
