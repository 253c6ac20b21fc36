#!/usr/bin/env bash
# The command engine's overhead per job against the built-in engine's, on
# the same tiny cell (WRN-10-1 on 64 Fashion-MNIST images, 3 epochs, a
# checkpoint each epoch), 12 seeds each, one CPU slot: a job's wall time
# (lease to completion) minus the seconds of its recorded epochs. The
# command is bench/noop_trainer.py, which trains nothing, so its figure is
# the engine's own cost: starting Python, the channel, uploads, completion.
# Usage: bash bench/command-overhead.sh [python with no extra packages; default python3]
set -euo pipefail
cd "$(dirname "$0")/.."
python=${1:-python3}
bin=target/release/widesweep
[ -x "$bin" ] || cargo build --release --locked -p widesweep
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

common='dataset = "fashion-mnist"
seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
[recipe]
epochs = 3
batch_size = 16
lr_milestones = []
train_subset = 64
test_subset = 64
checkpoint_every = 1
[grid]
block = ["B(3,3)"]
blocks_per_group = [1]
width = [1]'
printf 'name = "overhead-candle"\n%s\n' "$common" > "$tmp/candle.toml"
printf 'name = "overhead-command"\n%s\n[engine]\ncommand = ["%s", "bench/noop_trainer.py"]\nenv = { PYTHONPATH = "python/src" }\n' \
    "$common" "$python" > "$tmp/command.toml"
for engine in candle command; do
    WIDESWEEP_LOG=warn "$bin" run "$tmp/$engine.toml" --db "sqlite://$tmp/bench.db" --devices cpu \
        --listen 127.0.0.1:0 --artifacts "$tmp/artifacts" --scratch-dir "$tmp/scratch" > /dev/null
done
"$bin" sql --db "sqlite://$tmp/bench.db" "
SELECT engine, COUNT(*) AS jobs,
       ROUND(AVG((finished_at_ms - started_at_ms) / 1000.0), 3) AS wall_s,
       ROUND(AVG(train_seconds), 3) AS epochs_s,
       ROUND(AVG((finished_at_ms - started_at_ms) / 1000.0 - train_seconds), 3) AS overhead_s
FROM jobs WHERE status = 'succeeded' GROUP BY engine ORDER BY engine"
