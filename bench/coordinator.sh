#!/usr/bin/env bash
# Runs the coordinator benchmark matrix of BENCHMARKS.md: SQLite and
# PostgreSQL, 1 / 16 / 256 simulated workers, queues of 1,000 and 100,000
# jobs, each on a fresh database. Prints one JSON report per run.
# Usage: bash bench/coordinator.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
bin=target/release/widesweep
[ -x "$bin" ] || cargo build --release --locked -p widesweep
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pg_admin=${WIDESWEEP_BENCH_PG:-postgres://postgres@127.0.0.1:5432}

for backend in sqlite postgres; do
    for jobs in 1000 100000; do
        for workers in 1 16 256; do
            if [ "$backend" = sqlite ]; then
                rm -f "$tmp"/bench.db*
                db="sqlite://$tmp/bench.db"
            else
                psql "$pg_admin/postgres" -qc "DROP DATABASE IF EXISTS widesweep_bench" -qc "CREATE DATABASE widesweep_bench"
                db="$pg_admin/widesweep_bench"
            fi
            echo "== $backend, $jobs jobs, $workers workers"
            "$bin" bench coordinator --db "$db" --workers "$workers" --jobs "$jobs" --epochs 3 --seconds "$seconds" --format json
        done
    done
done
