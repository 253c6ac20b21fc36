#!/usr/bin/env bash
# Several jobs per GPU (issue 16): the sweep throughput of SLOT_JOBS
# one-epoch jobs (WRN-16-4 and WRN-40-4, batch 128, on SLOT_IMAGES synthetic
# CIFAR-10 images) with 1, 2, 4 and 8 slots and with auto, each a fresh
# `widesweep run` on its own SQLite file (model build, self-check and
# dataset load included, as a sweep pays them). bench/gpu-compare.sh runs
# it; alone:
#
#   WIDESWEEP_BIN=target/release/widesweep bash bench/slots-per-gpu.sh
#   SLOT_DEVICE=cpu SLOT_NETS=10x1 SLOT_JOBS=4 SLOT_IMAGES=256 ...   # a dry run on a CPU
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${WIDESWEEP_BIN:-$repo/target/release/widesweep}"
out="${OUT:-$repo}"
slot_jobs="${SLOT_JOBS:-16}"
slot_images="${SLOT_IMAGES:-10000}"
slot_device="${SLOT_DEVICE:-cuda:0}"
slot_nets="${SLOT_NETS:-16x4 40x4}"
slots_dir="$out/slots"
rm -rf "$slots_dir" && mkdir -p "$slots_dir"
"$bin" data synthetic cifar10 --data-dir "$slots_dir/data" --train "$slot_images" --test 1000 || exit 1
seeds="$(seq -s, 1 "$slot_jobs")"
echo "## slots per device on $slot_device: $slot_jobs jobs x 1 epoch of $slot_images images, batch 128"
echo "network    slots  seconds  jobs/hour"
for net in $slot_nets; do
    set -- ${net/x/ }
    for slots in 1 2 4 8 auto; do
        name="slots-$1-$2-$slots"
        cat > "$slots_dir/$name.toml" <<TOML
name = "$name"
dataset = "cifar10"
seeds = [$seeds]
[recipe]
epochs = 1
batch_size = 128
lr = 0.1
lr_milestones = []
checkpoint_every = 0
[grid]
block = ["B(3,3)"]
depth = [$1]
width = [$2]
TOML
        start=$(date +%s.%N)
        if "$bin" run "$slots_dir/$name.toml" --db "sqlite://$slots_dir/$name.db" --devices "$slot_device" \
            --slots-per-gpu "$slots" --data-dir "$slots_dir/data" --unofficial-dataset-sizes --http off \
            --artifacts "$slots_dir/artifacts" > "$slots_dir/$name.log" 2>&1; then
            end=$(date +%s.%N)
            awk -v n="WRN-$1-$2" -v s="$slots" -v a="$start" -v b="$end" -v j="$slot_jobs" \
                'BEGIN { t = b - a; printf "%-10s %5s %8.1f %10.0f\n", n, s, t, j / t * 3600 }'
            if [[ "$slots" == 1 ]]; then
                # The whole data path (augmentation on the prefetch thread,
                # host-to-device copies) inside the epoch's images/s: set
                # it beside `bench train`'s, whose batch never leaves the
                # device, to see whether the GPU waits for the host.
                "$bin" sql --db "sqlite://$slots_dir/$name.db" --format csv \
                    "SELECT 'WRN-$1-$2 one slot: training images/s with the data path, median of ' || count(*) || ' epochs: ' || (SELECT images_per_second FROM epochs ORDER BY images_per_second LIMIT 1 OFFSET (SELECT count(*) / 2 FROM epochs)) FROM epochs" \
                    | tail -1 | tr -d '"'
            fi
        else
            echo "WRN-$1-$2 $slots slots FAILED ($?): see $slots_dir/$name.log"
        fi
    done
done
