#!/usr/bin/env bash
# The whole GPU side-by-side of issue 6, in one run on a GPU machine (the
# device tool's machine: H100/H200, PyTorch installed, no network):
#
#   scripts/build-cuda.sh                 # here, on the CPU machine
#   bash bench/gpu-compare.sh             # there; log in $OUT (or ./gpu-compare.log)
#   PARTS=speed bash bench/gpu-compare.sh  # one part (speed, slots, losses): gpu-compare-speed.log
#
# Carry the gzipped binaries alone (target/cuda/dist/widesweep-cuda/
# widesweep.gz, and widesweep-cudnn.gz if built), which this script unpacks:
# the binary is ~70 MB, the CUDA libraries build-cuda.sh copies beside it
# far more, against the device tool's 64 MiB; the GPU machine's PyTorch
# environment has the same CUDA 13 libraries (and cuDNN) in its nvidia
# wheels, which this script puts on LD_LIBRARY_PATH.
#
# For WRN-16-4 and WRN-28-10 at batch 128: candle f32 and bf16 mixed
# precision (`widesweep bench train --precision`), PyTorch f32 (TF32
# convolutions allowed, its default) and PyTorch bf16 autocast, each one run,
# printed one line each, after the self-check of each build. With the cuDNN
# build (target/cuda/dist/widesweep-cuda/widesweep-cudnn) candle runs three
# ways: its NHWC path (cuDNN, fused kernels, deterministic algorithms), the
# same with any cuDNN algorithm, and its generic NCHW operators. Then the
# slots-per-GPU series and a correctness check on the fastest build: 300
# steps of the same seeded model on the GPU (f32 and bf16, f32 twice: the
# losses must repeat bit for bit) and on the CPU.
set -uo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="${WIDESWEEP_CUDA_BIN:-$repo/target/cuda/dist/widesweep-cuda/widesweep}"
python="${PYTHON:-python3}"
out="${OUT:-$repo}"
mkdir -p "$out"
log="$out/gpu-compare${PARTS:+-${PARTS// /-}}.log"
steps="${STEPS:-20}"
# Which parts run (all by default), so that the whole fits device calls of
# ten minutes: PARTS=speed, then PARTS="slots losses".
parts="${PARTS:-speed slots losses}"
want() { [[ " $parts " == *" $1 "* ]]; }

exec > >(tee "$log") 2>&1
for build in "$bin" "$bin-cudnn"; do
    if [[ ! -x "$build" && -f "$build.gz" ]]; then
        gunzip -c "$build.gz" > "$build" && chmod +x "$build"
    fi
done
nvidia_libs="$("$python" - <<'PY' 2>/dev/null
import glob, os
import nvidia  # namespace package of NVIDIA's CUDA wheels, as PyTorch installs them
dirs = {os.path.dirname(p) for root in nvidia.__path__ for p in glob.glob(f"{root}/**/lib*.so*", recursive=True)}
print(":".join(sorted(dirs)))
PY
)"
export LD_LIBRARY_PATH="${nvidia_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "# gpu-compare $(date -u +%FT%TZ)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' || true

# The self-check every worker slot runs before it trains: each build's CUDA
# kernels in f32 and bf16 against the CPU reference kernels in f64.
for build in "$bin" "$bin-cudnn"; do
    [[ -x "$build" ]] || continue
    echo "## self-check: ${build##*/}"
    "$build" bench self-check --devices cuda:0 || echo "self-check ${build##*/}: a precision has no kernel path that agrees ($?)"
done

if want speed; then
for cell in "16 4" "28 10"; do
    set -- $cell
    echo "## WRN-$1-$2, batch 128"
    # The plain build (candle's generic NCHW operators), and the cuDNN one
    # (build-cuda.sh --cudnn) when carried: its default NHWC path (cuDNN for
    # every convolution pass, widesweep's fused batch norm) and, for
    # comparison, its generic NCHW path.
    for build in "$bin" "$bin-cudnn"; do
        [[ -x "$build" ]] || continue
        layouts=nchw
        [[ "$build" == *-cudnn ]] && layouts="nhwc nchw"
        for layout in $layouts; do
            for precision in f32 bf16; do
                "$build" bench train --depth "$1" -k "$2" --batch-size 128 --device cuda:0 --steps "$steps" \
                    --warmup 3 --precision "$precision" --layout "$layout" \
                    || echo "candle ${build##*/} $layout $precision FAILED ($?)"
            done
        done
        if [[ "$build" == *-cudnn ]]; then
            # What keeping the backward passes deterministic costs.
            for precision in f32 bf16; do
                echo "(any cuDNN algorithm:)"
                WIDESWEEP_CUDNN_DETERMINISTIC=0 "$build" bench train --depth "$1" -k "$2" --batch-size 128 \
                    --device cuda:0 --steps "$steps" --warmup 3 --precision "$precision" --layout nhwc \
                    || echo "candle ${build##*/} nhwc $precision any-algorithm FAILED ($?)"
            done
        fi
    done
    for precision in f32 bf16; do
        "$python" "$repo/bench/pytorch_reference.py" --depth "$1" --width "$2" --batch-size 128 --device cuda \
            --steps "$steps" --warmup 3 --precision "$precision" || echo "pytorch $precision FAILED ($?)"
    done
done
fi
# The rest runs on the fastest build carried.
best="$bin"
[[ -x "$bin-cudnn" ]] && best="$bin-cudnn"
echo "## fastest build: ${best##*/}"
if want slots; then
# Several jobs per GPU: jobs/hour with 1, 2, 4, 8 and auto slots.
WIDESWEEP_BIN="$best" OUT="$out" bash "$repo/bench/slots-per-gpu.sh" || echo "slots-per-gpu FAILED ($?)"
fi

if want losses; then
# Correctness: the same seeded model and synthetic batch, 300 steps, on the
# GPU and on this machine's CPU (whose losses the tests pin down), and
# PyTorch on the GPU for the shape of the curve (its initialisation draws
# differ, so only the trend compares).
echo "## correctness: WRN-16-4, batch 32, 300 steps"
"$best" bench train --depth 16 -k 4 --batch-size 32 --steps 298 --warmup 2 --device cpu --print-losses \
    > "$out/losses-candle-cpu.txt" || echo "candle cpu FAILED ($?)"
"$best" bench train --depth 16 -k 4 --batch-size 32 --steps 298 --warmup 2 --device cuda:0 --print-losses \
    > "$out/losses-candle-cuda.txt" || echo "candle cuda FAILED ($?)"
"$best" bench train --depth 16 -k 4 --batch-size 32 --steps 298 --warmup 2 --device cuda:0 --precision bf16 \
    --print-losses > "$out/losses-candle-cuda-bf16.txt" || echo "candle cuda bf16 FAILED ($?)"
# Determinism: the same run again must print the same losses, bit for bit.
"$best" bench train --depth 16 -k 4 --batch-size 32 --steps 298 --warmup 2 --device cuda:0 --print-losses \
    > "$out/losses-candle-cuda-again.txt" || echo "candle cuda again FAILED ($?)"
if [[ "$(grep -c '^step' "$out/losses-candle-cuda.txt")" -gt 0 ]] \
    && cmp -s <(grep '^step' "$out/losses-candle-cuda.txt") <(grep '^step' "$out/losses-candle-cuda-again.txt"); then
    echo "PASS determinism: two CUDA runs of one seed print the same $(grep -c '^step' "$out/losses-candle-cuda.txt") losses"
elif [[ "$(grep -c '^step' "$out/losses-candle-cuda.txt" 2>/dev/null)" -eq 0 ]]; then
    echo "FAIL determinism: no CUDA losses to compare"
else
    echo "FAIL determinism: two CUDA runs of one seed differ"
    diff <(grep '^step' "$out/losses-candle-cuda.txt") <(grep '^step' "$out/losses-candle-cuda-again.txt") | head -4
fi
"$python" "$repo/bench/pytorch_reference.py" --depth 16 --width 4 --batch-size 32 --device cuda --steps 298 \
    --warmup 2 --print-losses > "$out/losses-pytorch-cuda.txt" || echo "pytorch FAILED ($?)"
"$python" - "$out" <<'PY'
import re, sys
def losses(name):
    try:
        text = open(f"{sys.argv[1]}/losses-{name}.txt").read()
    except OSError:
        return []
    return [float(v) for v in re.findall(r"^step \d+ loss (\S+)$", text, re.M)]
cpu, cuda, bf16, torch = (losses(n) for n in ("candle-cpu", "candle-cuda", "candle-cuda-bf16", "pytorch-cuda"))
print("step  candle-cpu  candle-cuda  cuda-bf16  pytorch-cuda")
for s in (1, 2, 5, 10, 50, 100, 200, 300):
    row = [f"{l[s - 1]:.5f}" if len(l) >= s else "-" for l in (cpu, cuda, bf16, torch)]
    print(f"{s:>4}  " + "  ".join(f"{v:>11}" for v in row))
# bf16 keeps 8 bits of mantissa: its first losses may differ by a few
# percent from f32's, not more, and it must learn as well.
for name, run, tolerance in (("f32", cuda, 1e-2), ("bf16", bf16, 5e-2)):
    if len(cpu) >= 10 and len(run) >= 10:
        worst = max(abs(a - b) / abs(a) for a, b in zip(cpu[:10], run[:10]))
        learnt = run[-1] < 0.1 * run[0]
        verdict = "PASS" if worst < tolerance and learnt else "FAIL"
        print(f"{verdict} {name}: first 10 steps differ by at most {worst:.2e} (relative, CPU f32 vs CUDA {name};"
              f" < {tolerance:g} wanted), CUDA loss {run[0]:.3f} -> {run[-1]:.4f}")
PY
fi
echo "# done $(date -u +%FT%TZ)"
