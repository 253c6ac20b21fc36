//! GFLOP/s of the CPU convolution kernel, forward and backward, at the
//! shapes of WRN-16-4's three groups and its first block (batch 128):
//!
//!     MIMALLOC_PURGE_DELAY=-1 cargo run --release -p widesweep-worker --example conv_throughput
//!
//! Each shape runs three times; the first includes allocator warm-up. The
//! backward figure counts both products (input and weight gradients). The
//! allocator is the `widesweep` binary's, told (by the variable above, as
//! the binary does itself) to keep freed memory.

use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use candle_core::{Device, Tensor, Var};
use widesweep_worker::kernels::conv::conv2d_nhwc;

fn main() -> candle_core::Result<()> {
    // (batch, size, in channels, out channels, kernel)
    let shapes = [(128, 32, 64, 64, 3), (128, 16, 128, 128, 3), (128, 8, 256, 256, 3), (128, 32, 16, 64, 3)];
    for (b, size, c, c_out, k) in shapes {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, size, size, c), &Device::Cpu)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (c_out, c, k, k), &Device::Cpu)?)?;
        let flops = 2.0 * (b * size * size * c_out * c * k * k) as f64;
        for _ in 0..3 {
            let started = Instant::now();
            let y = conv2d_nhwc(x.as_tensor(), w.as_tensor(), 1, k / 2)?;
            let forward = started.elapsed().as_secs_f64();
            let loss = y.sum_all()?;
            let started = Instant::now();
            loss.backward()?;
            let backward = started.elapsed().as_secs_f64();
            println!(
                "batch {b} {size}x{size} {c}->{c_out} {k}x{k}: forward {:.0} ms ({:.0} GFLOP/s), backward {:.0} ms ({:.0} GFLOP/s)",
                forward * 1e3,
                flops / forward / 1e9,
                backward * 1e3,
                2.0 * flops / backward / 1e9
            );
        }
    }
    Ok(())
}
