use candle_core::{DType, Device, Tensor, Var};
use std::time::Instant;
use widesweep_worker::kernels::conv::conv2d_nhwc;

fn main() {
    for &(b, h, c, cout, k, s) in &[
        (128usize, 32usize, 64usize, 64usize, 3usize, 1usize),
        (128, 16, 128, 128, 3, 1),
        (128, 8, 256, 256, 3, 1),
        (128, 32, 16, 64, 3, 1),
    ] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (b, h, h, c), &Device::Cpu).unwrap()).unwrap();
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (cout, c, k, k), &Device::Cpu).unwrap()).unwrap();
        let flops = 2.0 * (b * h * h / s / s * cout * c * k * k) as f64;
        for _ in 0..3 {
            let t = Instant::now();
            let y = conv2d_nhwc(x.as_tensor(), w.as_tensor(), s, k / 2).unwrap();
            let f = t.elapsed().as_secs_f64();
            let probe = y.ones_like().unwrap();
            let loss = (y * probe).unwrap().sum_all().unwrap();
            let t = Instant::now();
            let g = loss.backward().unwrap();
            let bw = t.elapsed().as_secs_f64();
            let _ = g.get(w.as_tensor()).unwrap().to_dtype(DType::F32);
            println!(
                "b{b} {h}x{h} {c}->{cout}: fwd {:.0} ms {:.0} GFLOP/s, bwd {:.0} ms {:.0} GFLOP/s",
                f * 1e3,
                flops / f / 1e9,
                bw * 1e3,
                2.0 * flops / bw / 1e9
            );
        }
    }
}
