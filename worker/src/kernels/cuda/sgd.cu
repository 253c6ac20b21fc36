// One Nesterov SGD step of one f32 parameter in two launches (PyTorch's
// semantics at dampening 0, as train/optimizer.rs): candle operations take
// nine, and small WRNs on a GPU are bound by launches. Compiled by
// worker/build.rs.

// buf = momentum * buf + (grad + weight_decay * param)
extern "C" __global__ void sgd_momentum(float* buf, const float* grad, const float* param, long long n,
                                        float momentum, float weight_decay) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float g = grad[i] + weight_decay * param[i];
        buf[i] = momentum * buf[i] + g;
    }
}

// param -= lr * (nesterov ? g + momentum * buf : buf), g as above, with the
// buffer sgd_momentum has just updated.
extern "C" __global__ void sgd_apply(float* param, const float* grad, const float* buf, long long n, float lr,
                                     float momentum, float weight_decay, int nesterov) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        const float g = grad[i] + weight_decay * param[i];
        const float update = nesterov ? g + momentum * buf[i] : buf[i];
        param[i] = param[i] - lr * update;
    }
}
