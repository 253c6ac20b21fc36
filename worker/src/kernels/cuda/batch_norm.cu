// Training batch norm fused with the ReLU after it, over channels-last
// activations x[rows, c] (rows = N*H*W), as widesweep's CPU kernels do it
// (kernels/batch_norm.rs): statistics, then one pass for
// y = max(0, x * scale + shift); backward, one pass for the two gradient
// sums, then one pass for dx. Compiled to PTX by worker/build.rs; bf16 is
// handled as its bits (elements.cuh).
//
// Every reduction is split into fixed chunks of rows whose partial sums are
// added in chunk order by one thread per channel, in double: no atomics, so
// the GPU path is reproducible run to run like the CPU's.
//
// Element types: float, and bf16 (`unsigned short` bits) with float
// statistics, scale, shift and gradients of gamma and beta.

#include "elements.cuh"

// Threads of a block: 32 channels (one warp reads 32 neighbouring values of
// a row) by ROWS_PER_BLOCK rows.
#define CHANNELS_PER_BLOCK 32
#define ROWS_PER_BLOCK 8

// Sums of the block's ROWS_PER_BLOCK threads of each channel, in a fixed
// order, written by the first row of threads.
__device__ __forceinline__ void block_sums(double a, double b, double* out_a, double* out_b) {
    __shared__ double sa[ROWS_PER_BLOCK][CHANNELS_PER_BLOCK];
    __shared__ double sb[ROWS_PER_BLOCK][CHANNELS_PER_BLOCK];
    sa[threadIdx.y][threadIdx.x] = a;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0) {
        for (int k = 1; k < ROWS_PER_BLOCK; ++k) {
            a += sa[k][threadIdx.x];
            b += sb[k][threadIdx.x];
        }
        *out_a = a;
        *out_b = b;
    }
}

// partial[chunk][0][ch] = sum of x, partial[chunk][1][ch] = sum of x^2 over
// the chunk's rows. Grid: (ceil(c / 32), chunks).
template <typename T>
__device__ void stats_partial(const T* x, long long rows, int c, double* partial) {
    const int ch = blockIdx.x * CHANNELS_PER_BLOCK + threadIdx.x;
    const long long chunks = gridDim.y, chunk = blockIdx.y;
    const long long begin = rows * chunk / chunks, end = rows * (chunk + 1) / chunks;
    double sum = 0.0, squares = 0.0;
    if (ch < c) {
        for (long long r = begin + threadIdx.y; r < end; r += ROWS_PER_BLOCK) {
            const float v = load(x, r * c + ch);
            sum += v;
            squares += (double)v * v;
        }
    }
    double a, b;
    block_sums(sum, squares, &a, &b);
    if (threadIdx.y == 0 && ch < c) {
        partial[(chunk * 2) * c + ch] = a;
        partial[(chunk * 2 + 1) * c + ch] = b;
    }
}

// stats[0..4][ch] = mean, biased variance, scale = gamma / sqrt(var + eps),
// shift = beta - mean * scale. One thread per channel.
extern "C" __global__ void bn_stats_finish(const double* partial, int chunks, long long rows, int c,
                                           const float* gamma, const float* beta, double eps, float* stats) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double sum = 0.0, squares = 0.0;
    for (int k = 0; k < chunks; ++k) {
        sum += partial[(k * 2) * c + ch];
        squares += partial[(k * 2 + 1) * c + ch];
    }
    const double n = rows > 0 ? (double)rows : 1.0;
    const double mean = sum / n;
    const double var = fmax(squares / n - mean * mean, 0.0);
    const double scale = (double)gamma[ch] / sqrt(var + eps);
    stats[ch] = (float)mean;
    stats[c + ch] = (float)var;
    stats[2 * c + ch] = (float)scale;
    stats[3 * c + ch] = (float)((double)beta[ch] - mean * scale);
}

// y = max(0, x * scale[ch] + shift[ch]), scale and shift the rows
// `affine` and `affine + c` of a per-channel table.
template <typename T>
__device__ void affine_relu(const T* x, long long n, int c, const float* scale, const float* shift, T* y) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(i % c);
        store(y, i, fmaxf(fmaf(load(x, i), scale[ch], shift[ch]), 0.0f));
    }
}

// partial[chunk][0][ch] = sum of g, partial[chunk][1][ch] = sum of
// g * (x - mean), g = dy where y > 0 (the ReLU's gradient).
template <typename T>
__device__ void grad_partial(const T* x, const T* y, const T* dy, long long rows, int c, const float* mean,
                             double* partial) {
    const int ch = blockIdx.x * CHANNELS_PER_BLOCK + threadIdx.x;
    const long long chunks = gridDim.y, chunk = blockIdx.y;
    const long long begin = rows * chunk / chunks, end = rows * (chunk + 1) / chunks;
    double sum_g = 0.0, sum_gx = 0.0;
    if (ch < c) {
        const float m = mean[ch];
        for (long long r = begin + threadIdx.y; r < end; r += ROWS_PER_BLOCK) {
            const long long i = r * c + ch;
            const float g = load(y, i) > 0.0f ? load(dy, i) : 0.0f;
            sum_g += g;
            sum_gx += (double)g * (load(x, i) - m);
        }
    }
    double a, b;
    block_sums(sum_g, sum_gx, &a, &b);
    if (threadIdx.y == 0 && ch < c) {
        partial[(chunk * 2) * c + ch] = a;
        partial[(chunk * 2 + 1) * c + ch] = b;
    }
}

// From the gradient sums and the forward statistics (mean, var rows of
// `stats`): coef[0] = dgamma, coef[1] = dbeta, and dx = k_g * g + k_0 +
// k_x * (x - mean) with coef[2] = k_g, coef[3] = k_0, coef[4] = k_x.
extern "C" __global__ void bn_grad_finish(const double* partial, int chunks, long long rows, int c,
                                          const float* stats, const float* gamma, double eps, float* coef) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch >= c) return;
    double sum_g = 0.0, sum_gx = 0.0;
    for (int k = 0; k < chunks; ++k) {
        sum_g += partial[(k * 2) * c + ch];
        sum_gx += partial[(k * 2 + 1) * c + ch];
    }
    const double n = rows > 0 ? (double)rows : 1.0;
    const double inv_std = 1.0 / sqrt((double)stats[c + ch] + eps);
    const double dgamma = sum_gx * inv_std;
    const double a = (double)gamma[ch] * inv_std;
    coef[ch] = (float)dgamma;
    coef[c + ch] = (float)sum_g;
    coef[2 * c + ch] = (float)a;
    coef[3 * c + ch] = (float)(-a * sum_g / n);
    coef[4 * c + ch] = (float)(-a * inv_std * dgamma / n);
}

template <typename T>
__device__ void input_grad(const T* x, const T* y, const T* dy, long long n, int c, const float* mean,
                           const float* coef, T* dx) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const int ch = (int)(i % c);
        const float g = load(y, i) > 0.0f ? load(dy, i) : 0.0f;
        const float v = coef[2 * c + ch] * g + coef[3 * c + ch] + coef[4 * c + ch] * (load(x, i) - mean[ch]);
        store(dx, i, v);
    }
}

// The running averages' update in place: running = keep * running +
// add * batch, one launch where candle operations would take four.
extern "C" __global__ void bn_update_running(float* running, const float* batch, int c, float keep, float add) {
    const int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < c) running[ch] = keep * running[ch] + add * batch[ch];
}

#define INSTANTIATE(SUFFIX, T)                                                                                   \
    extern "C" __global__ void bn_stats_partial_##SUFFIX(const T* x, long long rows, int c, double* partial) {   \
        stats_partial<T>(x, rows, c, partial);                                                                   \
    }                                                                                                            \
    extern "C" __global__ void bn_affine_relu_##SUFFIX(const T* x, long long n, int c, const float* scale,       \
                                                       const float* shift, T* y) {                               \
        affine_relu<T>(x, n, c, scale, shift, y);                                                                \
    }                                                                                                            \
    extern "C" __global__ void bn_grad_partial_##SUFFIX(const T* x, const T* y, const T* dy, long long rows,     \
                                                        int c, const float* mean, double* partial) {             \
        grad_partial<T>(x, y, dy, rows, c, mean, partial);                                                       \
    }                                                                                                            \
    extern "C" __global__ void bn_input_grad_##SUFFIX(const T* x, const T* y, const T* dy, long long n, int c,   \
                                                      const float* mean, const float* coef, T* dx) {             \
        input_grad<T>(x, y, dy, n, c, mean, coef, dx);                                                           \
    }

INSTANTIATE(f32, float)
INSTANTIATE(bf16, bf16_bits)
