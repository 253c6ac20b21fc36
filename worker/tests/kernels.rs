//! The CPU kernels against candle's generic operations: forward values and
//! the gradients of every argument, in f64, on random shapes, strides and
//! paddings; and the same bits whatever the thread count.

use candle_core::{DType, Device, Tensor, Var};
use proptest::prelude::*;
use widesweep_worker::kernels::batch_norm::{
    batch_norm_relu_eval, batch_norm_relu_train, batch_norm_relu_train_on_device,
};
use widesweep_worker::kernels::conv::{ConvGeometry, conv2d_nhwc, conv2d_nhwc_add};
use widesweep_worker::kernels::winograd;

const EPS: f64 = 1e-5;

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap()
}

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[derive(Debug, Clone)]
struct ConvCase {
    batch: usize,
    c: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
    padding: usize,
    seed: u64,
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (1usize..10, 1usize..6, 1usize..6, prop::sample::select(vec![1usize, 2, 3, 5]), 1usize..4, any::<u64>())
        .prop_flat_map(|(batch, c, c_out, k, stride, seed)| {
            (Just((batch, c, c_out, k, stride, seed)), 0..=k / 2 + 1, k.max(2)..10, k.max(2)..10)
        })
        .prop_map(|((batch, c, c_out, k, stride, seed), padding, h, w)| ConvCase {
            batch,
            c,
            c_out,
            h,
            w,
            k,
            stride,
            padding,
            seed,
        })
}

impl ConvCase {
    fn geometry(&self) -> ConvGeometry {
        ConvGeometry {
            batch: self.batch,
            height: self.h,
            width: self.w,
            in_channels: self.c,
            out_channels: self.c_out,
            kernel: self.k,
            stride: self.stride,
            padding: self.padding,
        }
    }
}

/// 3x3 stride-1 convolutions with enough channels for Winograd, on odd and
/// even sizes (odd outputs leave half tiles at the edges) and padding 0-2.
fn winograd_case() -> impl Strategy<Value = ConvCase> {
    (1usize..4, 0usize..4, 0usize..4, 0usize..=2, 1usize..9, 1usize..9, any::<u64>()).prop_map(
        |(batch, dc, dc_out, padding, h, w, seed)| {
            let min = 3usize.saturating_sub(2 * padding).max(1);
            ConvCase {
                batch,
                c: winograd::MIN_CHANNELS + dc,
                c_out: winograd::MIN_CHANNELS + dc_out,
                h: h.max(min),
                w: w.max(min),
                k: 3,
                stride: 1,
                padding,
                seed,
            }
        },
    )
}

/// A convolution from generic, differentiable candle ops, one kernel tap at
/// a time: `y += x_padded[.., ky + s*oy, kx + s*ox] x w[.., .., ky, kx]`.
/// candle's own `conv2d` backward fails on strides that do not divide the
/// padded input evenly, so this is the gradient reference.
fn conv_by_taps(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Tensor {
    let (_, c, h, width) = x.dims4().unwrap();
    let (c_out, _, k, _) = w.dims4().unwrap();
    let (oh, ow) = ((h + 2 * padding - k) / stride + 1, (width + 2 * padding - k) / stride + 1);
    let padded = x.pad_with_zeros(2, padding, padding).unwrap().pad_with_zeros(3, padding, padding).unwrap();
    let mut y: Option<Tensor> = None;
    for ky in 0..k {
        for kx in 0..k {
            let rows: Vec<u32> = (0..oh).map(|o| (ky + stride * o) as u32).collect();
            let cols: Vec<u32> = (0..ow).map(|o| (kx + stride * o) as u32).collect();
            let taps = padded
                .index_select(&Tensor::new(rows.as_slice(), &Device::Cpu).unwrap(), 2)
                .unwrap()
                .index_select(&Tensor::new(cols.as_slice(), &Device::Cpu).unwrap(), 3)
                .unwrap()
                .permute((0, 2, 3, 1))
                .unwrap()
                .contiguous()
                .unwrap(); // [b, oh, ow, c]
            let w_tap = w.narrow(2, ky, 1).unwrap().narrow(3, kx, 1).unwrap().reshape((c_out, c)).unwrap();
            let term = taps.broadcast_matmul(&w_tap.t().unwrap()).unwrap().permute((0, 3, 1, 2)).unwrap();
            y = Some(match y {
                Some(acc) => (acc + term).unwrap(),
                None => term,
            });
        }
    }
    y.unwrap()
}

#[derive(Clone, Copy, PartialEq)]
enum ConvImpl {
    Kernel,
    Taps,
    Candle,
}

/// `sum(conv(x, w) * probe)` and its gradients (none for candle's conv2d),
/// everything handed in and out in NCHW.
fn conv_objective(case: &ConvCase, which: ConvImpl) -> (Tensor, Option<(Tensor, Tensor)>) {
    let x = Var::from_tensor(&randn(&[case.batch, case.c, case.h, case.w], case.seed)).unwrap();
    let w = Var::from_tensor(&randn(&[case.c_out, case.c, case.k, case.k], case.seed ^ 1)).unwrap();
    let y = match which {
        ConvImpl::Kernel => {
            let x = x.as_tensor().permute((0, 2, 3, 1)).unwrap();
            conv2d_nhwc(&x, w.as_tensor(), case.stride, case.padding).unwrap().permute((0, 3, 1, 2)).unwrap()
        }
        ConvImpl::Taps => conv_by_taps(x.as_tensor(), w.as_tensor(), case.stride, case.padding),
        ConvImpl::Candle => {
            let y = x.as_tensor().conv2d(w.as_tensor(), case.padding, case.stride, 1, 1).unwrap();
            return (y, None);
        }
    };
    let probe = randn(y.dims(), case.seed ^ 2);
    let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(x.as_tensor()).unwrap().clone();
    let dw = grads.get(w.as_tensor()).unwrap().clone();
    (y.contiguous().unwrap(), Some((dx, dw)))
}

fn assert_conv_matches(case: &ConvCase) {
    let (y, grads) = conv_objective(case, ConvImpl::Kernel);
    let (y_taps, grads_taps) = conv_objective(case, ConvImpl::Taps);
    let (y_candle, _) = conv_objective(case, ConvImpl::Candle);
    let ((dx, dw), (dx_ref, dw_ref)) = (grads.unwrap(), grads_taps.unwrap());
    assert!(max_diff(&y, &y_candle) < 1e-10, "output differs from candle's conv2d: {case:?}");
    assert!(max_diff(&y, &y_taps) < 1e-10, "output differs from the tap sum: {case:?}");
    assert!(max_diff(&dx, &dx_ref) < 1e-10, "input gradient differs: {case:?}");
    assert!(max_diff(&dw, &dw_ref) < 1e-10, "weight gradient differs: {case:?}");
}

/// The fused `conv + residual` against the tap sum plus a generic add:
/// output and the gradients of input, weight and residual.
fn assert_conv_add_matches(case: &ConvCase) {
    let x = Var::from_tensor(&randn(&[case.batch, case.c, case.h, case.w], case.seed)).unwrap();
    let w = Var::from_tensor(&randn(&[case.c_out, case.c, case.k, case.k], case.seed ^ 1)).unwrap();
    let reference = conv_by_taps(x.as_tensor(), w.as_tensor(), case.stride, case.padding);
    let r = Var::from_tensor(&randn(reference.dims(), case.seed ^ 4)).unwrap();
    let probe = randn(reference.dims(), case.seed ^ 2);
    let nhwc = |t: &Tensor| t.permute((0, 2, 3, 1)).unwrap();
    let fused = conv2d_nhwc_add(&nhwc(x.as_tensor()), w.as_tensor(), &nhwc(r.as_tensor()), case.stride, case.padding)
        .unwrap()
        .permute((0, 3, 1, 2))
        .unwrap();
    let generic = (reference + r.as_tensor()).unwrap();
    assert!(max_diff(&fused, &generic) < 1e-10, "output differs: {case:?}");
    let grads = (&fused * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let grads_ref = (&generic * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    for (name, var) in [("x", &x), ("w", &w), ("residual", &r)] {
        let diff = max_diff(grads.get(var.as_tensor()).unwrap(), grads_ref.get(var.as_tensor()).unwrap());
        assert!(diff < 1e-10, "d{name} differs by {diff}: {case:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn conv_matches_generic_ops_forward_and_backward(case in conv_case()) {
        assert_conv_matches(&case);
    }

    #[test]
    fn conv_with_residual_matches_conv_plus_add(case in conv_case()) {
        assert_conv_add_matches(&case);
    }

    #[test]
    fn winograd_conv_matches_generic_ops_forward_and_backward(case in winograd_case()) {
        prop_assert!(winograd::applies(&case.geometry()), "not a Winograd shape: {:?}", case);
        assert_conv_matches(&case);
        assert_conv_add_matches(&case);
    }

    #[test]
    fn batch_norm_relu_matches_generic_ops(
        dims in prop::collection::vec(1usize..7, 1..4),
        c in 1usize..9,
        seed in any::<u64>(),
    ) {
        let mut shape = dims.clone();
        shape.push(c);
        bn_case(&shape, seed);
    }
}

/// The training BN + ReLU kernel against the textbook composition over the
/// last dimension: outputs, statistics, and the gradients of x, gamma, beta.
fn bn_case(shape: &[usize], seed: u64) {
    let c = *shape.last().unwrap();
    let x = Var::from_tensor(&randn(shape, seed).affine(3.0, 0.5).unwrap()).unwrap();
    let gamma = Var::from_tensor(&randn(&[c], seed ^ 1)).unwrap();
    let beta = Var::from_tensor(&randn(&[c], seed ^ 2)).unwrap();
    let probe = randn(shape, seed ^ 3);

    let (y, stats) = batch_norm_relu_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), EPS).unwrap();
    let grads = (&y * &probe).unwrap().sum_all().unwrap().backward().unwrap();

    let rows = x.as_tensor().reshape(((), c)).unwrap();
    let mean = rows.mean_keepdim(0).unwrap();
    let centered = rows.broadcast_sub(&mean).unwrap();
    let var = centered.sqr().unwrap().mean_keepdim(0).unwrap();
    let xhat = centered.broadcast_div(&(&var + EPS).unwrap().sqrt().unwrap()).unwrap();
    let y_ref = xhat
        .broadcast_mul(gamma.as_tensor())
        .unwrap()
        .broadcast_add(beta.as_tensor())
        .unwrap()
        .relu()
        .unwrap()
        .reshape(shape)
        .unwrap();
    let grads_ref = (&y_ref * &probe).unwrap().sum_all().unwrap().backward().unwrap();

    assert!(max_diff(&y, &y_ref) < 1e-10, "output differs for {shape:?}");
    let stats_mean = Tensor::new(stats.mean.as_slice(), &Device::Cpu).unwrap();
    let stats_var = Tensor::new(stats.var.as_slice(), &Device::Cpu).unwrap();
    assert!(max_diff(&stats_mean, &mean.flatten_all().unwrap()) < 1e-10);
    assert!(max_diff(&stats_var, &var.flatten_all().unwrap()) < 1e-10);
    assert_eq!(stats.count, shape.iter().product::<usize>() / c);
    for (name, var) in [("x", &x), ("gamma", &gamma), ("beta", &beta)] {
        let ours = grads.get(var.as_tensor()).unwrap();
        let reference = grads_ref.get(var.as_tensor()).unwrap();
        let diff = max_diff(ours, reference);
        assert!(diff < 1e-9, "d{name} differs by {diff} for {shape:?}");
    }
}

/// The device-generic entry the layers call gives the CPU kernel's output
/// and statistics, as tensors on the input's device, and stays
/// differentiable.
#[test]
fn batch_norm_with_statistics_on_the_device_is_the_cpu_kernel() {
    let shape = [3, 5, 4, 6];
    let x = Var::from_tensor(&randn(&shape, 5).affine(2.0, 0.3).unwrap()).unwrap();
    let gamma = randn(&[6], 6);
    let beta = randn(&[6], 7);
    let (y, stats) = batch_norm_relu_train(x.as_tensor(), &gamma, &beta, EPS).unwrap();
    let (y2, mean, var) = batch_norm_relu_train_on_device(x.as_tensor(), &gamma, &beta, EPS).unwrap();
    assert_eq!(max_diff(&y, &y2), 0.0);
    assert_eq!(mean.to_vec1::<f64>().unwrap(), stats.mean);
    assert_eq!(var.to_vec1::<f64>().unwrap(), stats.var);
    let grads = y2.sum_all().unwrap().backward().unwrap();
    assert!(grads.get(x.as_tensor()).is_some(), "the input gradient flows through");
}

/// Shapes past the kernels' task and partition sizes (1,024 rows per task,
/// several groups of images per convolution).
#[test]
fn kernels_match_on_shapes_spanning_many_tasks() {
    bn_case(&[5, 17, 15, 6], 11);
    let case = ConvCase { batch: 7, c: 4, c_out: 6, h: 16, w: 12, k: 3, stride: 2, padding: 1, seed: 3 };
    assert_conv_matches(&case);
}

/// Winograd in f32, at a WRN block's width, stays within f32 rounding of
/// the direct convolution computed in f64: output and input gradient (the
/// two products Winograd computes).
#[test]
fn winograd_in_f32_stays_close_to_exact_convolution() {
    let case = ConvCase { batch: 2, c: 64, c_out: 64, h: 8, w: 8, k: 3, stride: 1, padding: 1, seed: 21 };
    assert!(winograd::applies(&case.geometry()));
    let x = randn(&[case.batch, case.h, case.w, case.c], case.seed);
    let w = randn(&[case.c_out, case.c, 3, 3], case.seed ^ 1).affine(0.1, 0.0).unwrap();
    let probe = randn(&[case.batch, case.c_out, case.h, case.w], case.seed ^ 2);
    let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    let x32 = Var::from_tensor(&f32(&x)).unwrap();
    let y32 = conv2d_nhwc(x32.as_tensor(), &f32(&w), 1, 1).unwrap().permute((0, 3, 1, 2)).unwrap();
    let dx32 = (&y32 * &f32(&probe)).unwrap().sum_all().unwrap().backward().unwrap();
    let dx32 = dx32.get(x32.as_tensor()).unwrap().to_dtype(DType::F64).unwrap();
    let x64 = Var::from_tensor(&x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap()).unwrap();
    let y64 = conv_by_taps(x64.as_tensor(), &w, 1, 1);
    let dx64 = (&y64 * &probe).unwrap().sum_all().unwrap().backward().unwrap();
    let dx64 = dx64.get(x64.as_tensor()).unwrap().permute((0, 2, 3, 1)).unwrap();
    let scale = |t: &Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f64>().unwrap();
    let y_err = max_diff(&y32.to_dtype(DType::F64).unwrap(), &y64) / scale(&y64);
    let dx_err = max_diff(&dx32, &dx64) / scale(&dx64);
    assert!(y_err < 1e-5, "output relative error {y_err:e}");
    assert!(dx_err < 1e-5, "input gradient relative error {dx_err:e}");
}

/// A convolution of a constant (the network's input) skips the input
/// gradient and still gives the weight gradient.
#[test]
fn conv_of_a_constant_input_still_trains_its_weights() {
    let x = randn(&[2, 5, 5, 3], 1);
    let w = Var::from_tensor(&randn(&[4, 3, 3, 3], 2)).unwrap();
    let y = conv2d_nhwc(&x, w.as_tensor(), 1, 1).unwrap();
    let grads = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(grads.get(&x).is_none(), "no gradient for a constant");
    let y_ref = conv_by_taps(&x.permute((0, 3, 1, 2)).unwrap().contiguous().unwrap(), w.as_tensor(), 1, 1);
    let grads_ref = y_ref.sqr().unwrap().sum_all().unwrap().backward().unwrap();
    assert!(max_diff(grads.get(w.as_tensor()).unwrap(), grads_ref.get(w.as_tensor()).unwrap()) < 1e-10);
}

#[test]
fn inference_batch_norm_uses_the_given_statistics() {
    let x = randn(&[2, 3, 3, 4], 5);
    let gamma = randn(&[4], 6);
    let beta = randn(&[4], 7);
    let mean = randn(&[4], 8);
    let var = randn(&[4], 9).abs().unwrap();
    let y = batch_norm_relu_eval(&x, &gamma, &beta, &mean, &var, EPS).unwrap();
    let expected = x
        .broadcast_sub(&mean)
        .unwrap()
        .broadcast_div(&(&var + EPS).unwrap().sqrt().unwrap())
        .unwrap()
        .broadcast_mul(&gamma)
        .unwrap()
        .broadcast_add(&beta)
        .unwrap()
        .relu()
        .unwrap();
    assert!(max_diff(&y, &expected) < 1e-12);
    let err = batch_norm_relu_eval(&x, &gamma.narrow(0, 0, 3).unwrap(), &beta, &mean, &var, EPS).unwrap_err();
    assert!(err.to_string().contains("channels"), "{err}");
}

/// Reductions are split into fixed partitions summed in a fixed order, so
/// one thread and three give the same bits, in f32 as used in training.
#[test]
fn results_do_not_depend_on_the_thread_count() {
    let run = || {
        // Winograd (3x3 stride 1) for the first convolution, im2col (stride 2) for the second.
        let x = Var::from_tensor(&randn(&[9, 12, 12, 8], 1).to_dtype(DType::F32).unwrap()).unwrap();
        let w = Var::from_tensor(&randn(&[16, 8, 3, 3], 2).to_dtype(DType::F32).unwrap()).unwrap();
        let w2 = Var::from_tensor(&randn(&[16, 16, 3, 3], 5).to_dtype(DType::F32).unwrap()).unwrap();
        let gamma = Var::from_tensor(&randn(&[16], 3).to_dtype(DType::F32).unwrap()).unwrap();
        let beta = Var::from_tensor(&randn(&[16], 4).to_dtype(DType::F32).unwrap()).unwrap();
        let y = conv2d_nhwc(x.as_tensor(), w.as_tensor(), 1, 1).unwrap();
        let (z, _) = batch_norm_relu_train(&y, gamma.as_tensor(), beta.as_tensor(), EPS).unwrap();
        let z = conv2d_nhwc(&z, w2.as_tensor(), 2, 1).unwrap();
        let loss = z.sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        [x.as_tensor(), w.as_tensor(), w2.as_tensor(), gamma.as_tensor(), beta.as_tensor()]
            .map(|t| grads.get(t).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap())
    };
    let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
    let one = pool(1).install(run);
    let three = pool(3).install(run);
    assert!(one == three, "gradients differ between 1 and 3 threads");
}

#[test]
fn bad_shapes_get_errors_that_say_what_fits() {
    let x = Tensor::zeros((1, 4, 4, 3), DType::F32, &Device::Cpu).unwrap();
    let w = Tensor::zeros((8, 2, 3, 3), DType::F32, &Device::Cpu).unwrap();
    let err = conv2d_nhwc(&x, &w, 1, 1).unwrap_err().to_string();
    assert!(err.contains("does not fit input") && err.contains("[c_out, 3, k, k]"), "{err}");
    let w = Tensor::zeros((8, 3, 7, 7), DType::F32, &Device::Cpu).unwrap();
    let err = conv2d_nhwc(&x, &w, 1, 0).unwrap_err().to_string();
    assert!(err.contains("7x7 kernel does not fit a 4x4 input"), "{err}");
    let gamma = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
    let err = batch_norm_relu_train(&x, &gamma, &gamma, EPS).unwrap_err().to_string();
    assert!(err.contains("one value per channel"), "{err}");
}
