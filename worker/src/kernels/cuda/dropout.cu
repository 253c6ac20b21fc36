// Inverted dropout on the GPU: y = x * scale where the element is kept, 0
// where it is dropped. Whether element i is kept is a pure function of the
// layer's 64-bit key and i (widesweep_worker::rng::dropout_keeps, which the
// CPU path computes in Rust): the same masks on every device, nothing
// stored for the backward pass (it recomputes them), and nothing drawn on
// the host. Compiled by worker/build.rs; bf16 handled as its bits
// (elements.cuh).

#include "elements.cuh"

// SplitMix64's output function over the counter key + (i + 1) * golden gamma.
__device__ __forceinline__ bool keeps(unsigned long long key, long long i, unsigned long long threshold) {
    unsigned long long z = key + (unsigned long long)(i + 1) * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (z >> 32) >= threshold;
}

// `scale` is 1 / (1 - p) already rounded to the element type, so the
// product rounds as candle's `x * mask` does on the CPU.
template <typename T>
__device__ void dropout(const T* x, long long n, unsigned long long key, unsigned long long threshold, float scale,
                        T* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        store(y, i, keeps(key, i, threshold) ? load(x, i) * scale : 0.0f);
    }
}

extern "C" __global__ void dropout_f32(const float* x, long long n, unsigned long long key,
                                       unsigned long long threshold, float scale, float* y) {
    dropout<float>(x, n, key, threshold, scale, y);
}

extern "C" __global__ void dropout_bf16(const bf16_bits* x, long long n, unsigned long long key,
                                        unsigned long long threshold, float scale, bf16_bits* y) {
    dropout<bf16_bits>(x, n, key, threshold, scale, y);
}
