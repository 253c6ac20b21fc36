// Loads and stores of the kernels' element types, as f32 arithmetic: f32,
// and bf16 as its bits (`unsigned short`), so no CUDA header is needed.
#pragma once

typedef unsigned short bf16_bits;

__device__ __forceinline__ float load(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float load(const bf16_bits* p, long long i) {
    return __uint_as_float(((unsigned int)p[i]) << 16);
}
__device__ __forceinline__ void store(float* p, long long i, float v) { p[i] = v; }
// Round to nearest even, as every bf16 conversion of candle and PyTorch.
__device__ __forceinline__ void store(bf16_bits* p, long long i, float v) {
    unsigned int bits = __float_as_uint(v);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        p[i] = (bf16_bits)((bits >> 16) | 0x40u);  // a NaN stays a NaN
        return;
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    p[i] = (bf16_bits)(bits >> 16);
}
