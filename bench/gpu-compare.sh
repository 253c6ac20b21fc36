#!/usr/bin/env bash
# The whole GPU side-by-side of issue 6, in one run on a GPU machine (the
# device tool's machine: H100/H200, PyTorch installed, no network):
#
#   scripts/build-cuda.sh                 # here, on the CPU machine; carry target/cuda/dist
#   bash bench/gpu-compare.sh             # there; log in $OUT (or ./gpu-compare.log)
#
# For WRN-16-4 and WRN-28-10 at batch 128: candle f32 (`widesweep bench
# train`), PyTorch f32 (TF32 convolutions allowed, its default) and PyTorch
# bf16 autocast, each one run, printed one line each. candle's bf16 mode
# (`recipe.precision`) is not built yet: its line says so.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${WIDESWEEP_CUDA_BIN:-$repo/target/cuda/dist/widesweep-cuda/widesweep}"
python="${PYTHON:-python3}"
out="${OUT:-$repo}"
log="$out/gpu-compare.log"
steps="${STEPS:-20}"

exec > >(tee "$log") 2>&1
echo "# gpu-compare $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' || true

for cell in "16 4" "28 10"; do
    set -- $cell
    echo "## WRN-$1-$2, batch 128"
    "$bin" bench train --depth "$1" -k "$2" --batch-size 128 --device cuda:0 --steps "$steps" --warmup 3 \
        || echo "candle f32 FAILED ($?)"
    echo "candle bf16: not implemented yet (recipe.precision = \"bf16\" is future work)"
    for precision in f32 bf16; do
        "$python" "$repo/bench/pytorch_reference.py" --depth "$1" --width "$2" --batch-size 128 --device cuda \
            --steps "$steps" --warmup 3 --precision "$precision" || echo "pytorch $precision FAILED ($?)"
    done
done
echo "# done $(date -u +%FT%TZ)"
