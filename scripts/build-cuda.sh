#!/usr/bin/env bash
# Builds `widesweep` with the `cuda` feature on a machine without a GPU or a
# CUDA toolkit, for GPU machines with driver 580 / CUDA 13.0.
#
#   scripts/build-cuda.sh           # -> target/cuda/dist/widesweep-cuda/{widesweep,lib/}
#   scripts/build-cuda.sh --cudnn   # -> .../widesweep-cudnn: forward convolutions through cuDNN
#
# - nvcc 13.0 and the CUDA 13.0 libraries come from NVIDIA's pip wheels,
#   installed into a virtual environment outside the repository
#   ($CUDA_VENV, default ~/.cache/widesweep/cuda-venv).
# - candle's kernel build needs CUDA_ROOT pointing at them and
#   CUDA_COMPUTE_CAP (90 = H100/H200; override for other GPUs).
# - cudarc links against libcuda.so, the driver, which only GPU machines
#   have: we link against a stub built with gcc that exports the driver's
#   symbols (taken from cudarc's own bindings). At run time the real
#   libcuda.so.1 of the GPU machine is loaded instead.
# - The CUDA libraries the binary needs (cuBLAS, cuRAND, NVRTC, cudart) are
#   copied next to it, and the binary's rpath points there, so the GPU
#   machine needs only its driver. They are far larger than the device
#   tool carries (64 MiB): there, carry the gzipped binary alone
#   (target/cuda/dist/widesweep-cuda/widesweep.gz) and take the same CUDA 13
#   libraries from PyTorch's nvidia wheels (bench/gpu-compare.sh unpacks
#   the binary and puts them on LD_LIBRARY_PATH).
# - --cudnn links cuDNN 9 from NVIDIA's wheel (not copied: PyTorch's
#   environment has its own). That binary cannot start where libcudnn.so.9
#   is missing: the plain binary is the build without cuDNN, which runs
#   everywhere and logs that it runs without it.
set -euo pipefail

cudnn=false
case "${1:-}" in
    "") ;;
    --cudnn) cudnn=true ;;
    *) echo "usage: $0 [--cudnn]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CUDA_VENV:-$HOME/.cache/widesweep/cuda-venv}"
compute_cap="${CUDA_COMPUTE_CAP:-90}"
jobs="${CARGO_BUILD_JOBS:-$(nproc)}"

# Pinned to CUDA 13.0.x: the GPU machines run driver 580 (CUDA 13.0).
wheels=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc~=13.0.0
    nvidia-cublas~=13.0.0
    nvidia-curand~=10.4.0
)
if $cudnn; then wheels+=("nvidia-cudnn-cu13>=9.2,<10"); fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating $venv"
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet "${wheels[@]}"

site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cuda_root="$site/nvidia/cu13"
[[ -x "$cuda_root/bin/nvcc" ]] || { echo "error: no nvcc under $cuda_root/bin" >&2; exit 1; }
"$cuda_root/bin/nvcc" --version | tail -2

# The linker wants unversioned names and a lib64 folder.
lib="$cuda_root/lib"
for so in "$lib"/lib*.so.*; do
    base="${so##*/}"
    unversioned="$lib/${base%%.so.*}.so"
    [[ -e "$unversioned" ]] || ln -s "$base" "$unversioned"
done
[[ -e "$cuda_root/lib64" ]] || ln -s lib "$cuda_root/lib64"

# The stub driver: every cu* function cudarc declares, as an empty function.
stub="$venv/libcuda-stub"
mkdir -p "$stub"
(cd "$repo" && cargo fetch --quiet)
cudarc_crate="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/cudarc-"$(
    grep -A1 '^name = "cudarc"' "$repo/Cargo.lock" | sed -nE 's/version = "(.*)"/\1/p')".crate | head -1)"
tar -xzf "$cudarc_crate" -O --wildcards '*/src/driver/sys/*.rs' \
    | grep -oE 'pub (unsafe )?fn cu[A-Za-z0-9_]+' | sed -E 's/.*fn //' | sort -u > "$stub/symbols.txt"
awk '{ printf "void %s(void) {}\n", $1 }' "$stub/symbols.txt" > "$stub/libcuda.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so" "$stub/libcuda.c"
ln -sf libcuda.so "$stub/libcuda.so.1"
echo "stub libcuda.so exports $(wc -l < "$stub/symbols.txt") driver symbols"

features=cuda
binary=widesweep
cudnn_link_path=""
if $cudnn; then
    cudnn_so="$(find "$site/nvidia" -name 'libcudnn.so.9' | head -1)"
    [[ -n "$cudnn_so" ]] || { echo "error: no libcudnn.so.9 under $site/nvidia" >&2; exit 1; }
    cudnn_lib="$(dirname "$cudnn_so")"
    [[ -e "$cudnn_lib/libcudnn.so" ]] || ln -s libcudnn.so.9 "$cudnn_lib/libcudnn.so"
    # Through LIBRARY_PATH rather than RUSTFLAGS, whose change would
    # rebuild every crate of the plain build.
    cudnn_link_path="$cudnn_lib:"
    features=cuda,cudnn
    binary=widesweep-cudnn
fi

export CUDA_ROOT="$cuda_root" CUDA_PATH="$cuda_root" CUDA_COMPUTE_CAP="$compute_cap"
export PATH="$cuda_root/bin:$PATH"
export LIBRARY_PATH="$cudnn_link_path$stub:$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L native=$stub -L native=$lib -C link-arg=-Wl,-rpath,\$ORIGIN/lib"
# A target folder of its own: the feature set differs from the CPU build's.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target/cuda}"
dist="$CARGO_TARGET_DIR/dist/widesweep-cuda"

cd "$repo"
cargo build --release -p widesweep --features "$features" -j "$jobs"

mkdir -p "$dist/lib"
cp "$CARGO_TARGET_DIR/release/widesweep" "$dist/$binary"
# Stripped and gzipped for the device tool, which carries 64 MiB at most
# (the binary is ~70 MB of mostly PTX even stripped, ~21 MB gzipped);
# bench/gpu-compare.sh unpacks it there.
strip "$dist/$binary"
gzip -9 -k -f "$dist/$binary"
for name in libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libnvrtc-builtins.so.13.0 libcudart.so.13; do
    if [[ -e "$lib/$name" ]]; then cp -L "$lib/$name" "$dist/lib/"; fi
done
echo "built $dist/$binary and $binary.gz (CUDA 13.0, compute capability $compute_cap, features $features)"
echo "run it on a GPU machine: $dist/$binary bench train --depth 16 -k 4 --device cuda:0"
