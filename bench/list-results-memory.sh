#!/usr/bin/env bash
# The coordinator's peak memory while ListResults streams a whole sweep
# (every job, then every epoch) to `widesweep export --epochs`, for a sweep
# of 1,000 and of 100,000 finished jobs x 200 epochs on SQLite. The sweep is
# submitted through the coordinator, then finished in bulk with SQL (20
# million epoch rows for the large one), then the coordinator is restarted
# and read; its peak resident memory (VmHWM) is printed before and after.
# Usage: bash bench/list-results-memory.sh [path to the widesweep binary]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/widesweep}
[ -x "$bin" ] || cargo build --release --locked -p widesweep
tmp=$(mktemp -d)
trap 'kill "${pid:-}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
epochs=200

spec() { # name jobs
    python3 - "$1" "$2" "$epochs" <<'EOF'
import sys
name, jobs, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print(f'name = "{name}"\ndataset = "cifar10"')
print("seeds = [" + ", ".join(str(s) for s in range(1, jobs + 1)) + "]")
print(f"[recipe]\nepochs = {epochs}\n[grid]\ndepth = [16]\nwidth = [4]")
EOF
}

serve() { # db
    "$bin" serve --db "$1" --listen 127.0.0.1:7391 --artifacts "$tmp/artifacts" 2>"$tmp/serve.log" &
    pid=$!
    for _ in $(seq 1 100); do
        "$bin" status --coordinator http://127.0.0.1:7391 >/dev/null 2>&1 && return
        sleep 0.2
    done
    echo "the coordinator did not start:" >&2
    cat "$tmp/serve.log" >&2
    exit 1
}

hwm() { awk '/VmHWM/ { printf "%.1f MiB", $2 / 1024 }' "/proc/$pid/status"; }

for jobs in 1000 100000; do
    db_file="$tmp/results-$jobs.db"
    db="sqlite://$db_file"
    spec "memory$jobs" "$jobs" >"$tmp/spec.toml"
    serve "$db"
    "$bin" submit "$tmp/spec.toml" --coordinator http://127.0.0.1:7391 >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    started=$(date +%s)
    sqlite3 "$db_file" <<EOF
BEGIN;
UPDATE jobs SET status = 'succeeded', attempt = 1, attempts_spent = 1, epochs_done = $epochs,
    final_train_loss = 0.01, final_train_error = 0.001, final_test_loss = 0.2, final_test_error = 0.05,
    best_test_error = 0.049, train_seconds = 6000.0, started_at_ms = 0, finished_at_ms = 1;
INSERT INTO epochs (job_id, epoch, attempt, train_loss, train_error, test_loss, test_error, lr,
                    epoch_seconds, images_per_second, recorded_at_ms)
WITH RECURSIVE e(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM e WHERE n < $epochs)
SELECT j.id, e.n, 1, 1.0 / e.n, 0.5 / e.n, 1.0, 0.05 + 0.1 / e.n, 0.1, 30.0, 1700.0, e.n FROM jobs j, e;
COMMIT;
EOF
    rows=$(sqlite3 "$db_file" "SELECT COUNT(*) FROM epochs")
    echo "== $jobs jobs x $epochs epochs: $rows epoch rows, $(du -h "$db_file" | cut -f1) database (filled in $(( $(date +%s) - started )) s)"
    serve "$db"
    echo "coordinator peak RSS after start:        $(hwm)"
    started=$(date +%s.%N)
    "$bin" export "memory$jobs" --epochs --format csv --coordinator http://127.0.0.1:7391 -o "$tmp/curves.csv"
    lines=$(wc -l <"$tmp/curves.csv")
    echo "coordinator peak RSS after ListResults:  $(hwm) ($lines CSV lines in $(printf '%.1f' "$(echo "$(date +%s.%N) - $started" | bc)") s)"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$db_file"* "$tmp/curves.csv"
done
