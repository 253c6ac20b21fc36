# widesweep with CUDA, for docker-compose.yml's coordinator and GPU workers.
#
#   docker build -t widesweep:latest .                       # H100/H200 (compute 9.0)
#   docker build --build-arg CUDA_COMPUTE_CAP=80 -t widesweep:latest .   # A100
#
# The builder compiles candle's CUDA kernels for one compute capability;
# the runtime image carries the CUDA libraries the binary loads (cuBLAS,
# cuRAND, NVRTC); the GPU driver comes from the host (NVIDIA Container Toolkit).

ARG CUDA_VERSION=13.0.1
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS build
ARG CUDA_COMPUTE_CAP=90
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates build-essential pkg-config \
    && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain stable
ENV PATH=/root/.cargo/bin:$PATH \
    CUDA_ROOT=/usr/local/cuda \
    CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    LIBRARY_PATH=/usr/local/cuda/lib64/stubs
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p widesweep --features cuda \
    && cp target/release/widesweep /widesweep

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 widesweep \
    && mkdir -p /data /var/lib/widesweep && chown widesweep /data /var/lib/widesweep
COPY --from=build /widesweep /usr/local/bin/widesweep
USER widesweep
WORKDIR /var/lib/widesweep
# The binary and the CUDA libraries it links load. Whether the coordinator
# serves or a worker trains is the orchestrator's probe (compose and the
# Kubernetes manifests check the coordinator's port).
HEALTHCHECK --interval=60s --timeout=10s CMD ["widesweep", "--version"]
CMD ["widesweep", "--help"]
