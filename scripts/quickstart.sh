#!/usr/bin/env bash
# The quickstart: prepares the machine, builds widesweep, and runs the
# quickstart sweep (examples/quickstart.toml: block type x width on real
# Fashion-MNIST, two seeds per cell) to its table, on the embedded SQLite
# default, with one worker slot on the CPU.
#
# Run it again to see a finished sweep resume: nothing is retrained. Ctrl-C
# during the run, then run it again: it continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo build --release --locked -p widesweep
bin=target/release/widesweep
workdir=${WIDESWEEP_QUICKSTART_DIR:-quickstart-run}
mkdir -p "$workdir"

echo "== plan: what the spec expands to, without a database"
"$bin" plan examples/quickstart.toml

echo "== run: coordinator, worker and progress in one process; the table at the end"
echo "   (a second terminal can add a worker: $bin work --coordinator http://127.0.0.1:7070 --devices cpu)"
"$bin" run examples/quickstart.toml --db "sqlite://$workdir/widesweep.db" --artifacts "$workdir/artifacts" \
    --data-dir "$workdir/data" --devices cpu --baseline 'block=B(3,3)'
