#!/usr/bin/env bash
# The quickstart: prepares the machine, builds widesweep, and walks the
# coordinator through the quickstart sweep on the embedded SQLite default:
# plan it, serve a coordinator, submit the spec (twice: the second submit
# adds nothing), show its status, and train one of its cells directly on
# real Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p widesweep
bin=target/release/widesweep
workdir=${WIDESWEEP_QUICKSTART_DIR:-quickstart-run}
mkdir -p "$workdir"

echo "== plan: what the spec expands to, without a database"
"$bin" plan examples/quickstart.toml

echo "== serve: a coordinator on $workdir/widesweep.db"
"$bin" serve --db "sqlite://$workdir/widesweep.db" --artifacts "$workdir/artifacts" --listen 127.0.0.1:7070 \
    2> "$workdir/coordinator.log" &
coordinator=$!
trap 'kill $coordinator 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    "$bin" status >/dev/null 2>&1 && break
    sleep 0.2
done

echo "== submit (twice: submitting is idempotent)"
"$bin" submit examples/quickstart.toml
"$bin" submit examples/quickstart.toml

echo "== status"
"$bin" status
"$bin" status quickstart

echo "== train: one cell of the sweep directly, on real Fashion-MNIST"
"$bin" data fetch fashion-mnist --data-dir "$workdir/data"
"$bin" train --dataset fashion-mnist --block 'B(3,3)' --blocks-per-group 1 -k 1 --epochs 2 --lr-milestones 1 \
    --batch-size 16 --lr 0.05 --no-augment --train-subset 1024 --test-subset 500 --data-dir "$workdir/data"
