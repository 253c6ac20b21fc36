//! The candle model against the shared architecture plan and the exact
//! parameter counts of the paper's networks.

use candle_core::{DType, Device, Module, ModuleT, Tensor, Var};
use candle_nn::VarBuilder;
use widesweep_arch::{BlockPattern, Dataset, Precision, WrnConfig};
use widesweep_worker::wrn::block::Block;
use widesweep_worker::wrn::init::{SeededInit, TensorStore};
use widesweep_worker::wrn::layers::{Layout, MaskSource, Recalibration};
use widesweep_worker::wrn::{ModelOptions, Wrn};

fn instantiated(cfg: &WrnConfig) -> u64 {
    let model = Wrn::new(cfg, 0, DType::F32, &Device::Cpu).unwrap();
    let count = model.param_count();
    assert_eq!(count, cfg.plan().param_count(), "{} instantiated vs planned", cfg.name());
    count
}

/// Exact parameter counts of the paper's networks: (depth, k, CIFAR-10, CIFAR-100).
const BASIC: &[(usize, usize, u64, Option<u64>)] = &[
    (16, 4, 2_748_890, Some(2_772_020)),
    (16, 8, 10_961_370, None),
    (16, 10, 17_116_634, None),
    (22, 8, 17_158_106, None),
    (22, 10, 26_797_914, None),
    (28, 10, 36_479_194, Some(36_536_884)),
    (28, 12, 52_517_850, None),
    (40, 1, 563_930, Some(569_780)),
    (40, 2, 2_243_546, Some(2_255_156)),
    (40, 4, 8_949_210, Some(8_972_340)),
    (40, 8, 35_748_314, None),
    (40, 10, 55_841_754, None),
    (52, 1, 758_362, None),
];

#[test]
fn instantiated_parameter_counts_match_the_reference() {
    for &(depth, k, c10, c100) in BASIC {
        assert_eq!(instantiated(&WrnConfig::wrn(depth, k, Dataset::Cifar10).unwrap()), c10, "WRN-{depth}-{k}");
        if let Some(c100) = c100 {
            assert_eq!(
                instantiated(&WrnConfig::wrn(depth, k, Dataset::Cifar100).unwrap()),
                c100,
                "WRN-{depth}-{k} C100"
            );
        }
    }
}

#[test]
fn block_type_and_deepening_counts_match_tables_2_and_3() {
    for (block, n, exact) in [
        ("B(1,3,1)", 6, 1_429_082),
        ("B(3,1)", 6, 1_211_354),
        ("B(1,3)", 6, 1_297_370),
        ("B(3,1,1)", 6, 1_343_066),
        ("B(3,3)", 4, 1_467_610),
        ("B(3,1,3)", 3, 1_145_498),
    ] {
        let cfg = WrnConfig::new(block.parse().unwrap(), n, 2, 0.0, 3, 10).unwrap();
        assert_eq!(instantiated(&cfg), exact, "{block}");
    }
    for (l, n) in [(1, 12), (3, 4), (4, 3)] {
        let cfg = WrnConfig::new(BlockPattern::deepened(l).unwrap(), n, 2, 0.3, 3, 10).unwrap();
        assert_eq!(instantiated(&cfg), 2_243_546, "l = {l}");
    }
}

#[test]
fn every_block_type_and_dataset_gives_logits_of_the_right_shape() {
    let blocks = ["B(3,3)", "B(3,1,3)", "B(1,3,1)", "B(1,3)", "B(3,1)", "B(3,1,1)", "B(3)", "B(3,3,3,3)"];
    for dataset in Dataset::ALL {
        for block in blocks {
            let cfg = WrnConfig::new(block.parse().unwrap(), 1, 1, 0.3, dataset.in_channels(), dataset.num_classes())
                .unwrap();
            let model = Wrn::new(&cfg, 1, DType::F32, &Device::Cpu).unwrap();
            model.reseed_dropout(1, 0, 0);
            let x = Tensor::ones((2, dataset.in_channels(), 32, 32), DType::F32, &Device::Cpu).unwrap();
            for train in [true, false] {
                let logits = model.forward_t(&x, train).unwrap();
                assert_eq!(logits.dims(), &[2, dataset.num_classes()], "{block} {dataset} train={train}");
            }
        }
    }
}

#[test]
fn checkpoint_names_mirror_the_module_tree() {
    let cfg = WrnConfig::wrn(10, 2, Dataset::Cifar10).unwrap();
    let model = Wrn::new(&cfg, 0, DType::F32, &Device::Cpu).unwrap();
    let names: Vec<String> = model.store().all().into_iter().map(|(n, _)| n).collect();
    for expected in [
        "stem.weight",
        "group1.block0.bn0.weight",
        "group1.block0.bn0.running_var",
        "group1.block0.conv1.weight",
        "group1.block0.shortcut.weight",
        "group2.block0.shortcut.weight",
        "head.bn.running_mean",
        "head.fc.weight",
        "head.fc.bias",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    assert_eq!(model.store().buffers().len(), 2 * (3 * 2 + 1), "two running statistics per BN");
}

#[test]
fn initialisation_follows_the_official_code_and_the_seed() {
    let cfg = WrnConfig::wrn(16, 4, Dataset::Cifar10).unwrap();
    let a = Wrn::new(&cfg, 5, DType::F32, &Device::Cpu).unwrap();
    let b = Wrn::new(&cfg, 5, DType::F32, &Device::Cpu).unwrap();
    let c = Wrn::new(&cfg, 6, DType::F32, &Device::Cpu).unwrap();
    let get =
        |m: &Wrn, name: &str| m.store().get(name).unwrap().as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let w = get(&a, "group2.block1.conv0.weight");
    assert_eq!(w, get(&b, "group2.block1.conv0.weight"), "same seed, same weights");
    assert_ne!(w, get(&c, "group2.block1.conv0.weight"), "another seed, other weights");
    let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    let expected = (2.0f32 / (9.0 * 128.0)).sqrt();
    assert!((std / expected - 1.0).abs() < 0.02, "conv std {std} vs {expected}");
    let gamma = get(&a, "group1.block0.bn1.weight");
    assert!(gamma.iter().all(|g| (0.0..1.0).contains(g)) && gamma.iter().any(|g| *g > 0.5));
    assert!(get(&a, "group1.block0.bn1.bias").iter().all(|b| *b == 0.0));
    assert!(get(&a, "head.fc.bias").iter().all(|b| *b == 0.0));
}

fn build_block(plan: &widesweep_arch::BlockPlan, dtype: DType, layout: Layout) -> (Block, TensorStore) {
    let store = TensorStore::default();
    let vb = VarBuilder::from_backend(Box::new(SeededInit { seed: 3, store: store.clone() }), dtype, Device::Cpu);
    let block = Block::new(plan, 0.0, MaskSource::default(), Recalibration::default(), layout, vb).unwrap();
    (block, store)
}

/// The pre-activation wiring: with zeroed residual convolutions a block
/// returns its shortcut, the raw input when channels match and the 1x1
/// projection of BN-ReLU(input) when they do not.
#[test]
fn shortcut_takes_the_raw_input_or_the_preactivated_one() {
    let plan = WrnConfig::wrn(16, 2, Dataset::Cifar10).unwrap().plan();
    let x = Tensor::randn(0f32, 1.0, (2, 32, 16, 16), &Device::Cpu).unwrap();
    // Group 2 block 0 of WRN-16-2: 32 -> 64 channels, stride 2.
    let (block, store) = build_block(&plan.groups[1].blocks[0], DType::F32, Layout::Nchw);
    let zero = |name: &str| {
        let v = store.get(name).unwrap();
        v.set(&v.zeros_like().unwrap()).unwrap();
    };
    zero("conv1.weight");
    let out = block.forward_t(&x, false).unwrap();
    // Eval BN with fresh statistics is gamma * x / sqrt(1 + eps) + beta.
    let gamma = store.get("bn0.weight").unwrap().as_tensor().reshape((1, 32, 1, 1)).unwrap();
    let pre = (x.broadcast_mul(&gamma).unwrap() / (1.0 + 1e-5f64).sqrt()).unwrap().relu().unwrap();
    let w = store.get("shortcut.weight").unwrap();
    let expected = pre.conv2d(w.as_tensor(), 0, 2, 1, 1).unwrap();
    let diff = (out - expected).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-5, "projection shortcut differs by {diff}");
    // Group 2 block 1: 64 -> 64, identity on the raw input.
    let (block, store) = build_block(&plan.groups[1].blocks[1], DType::F32, Layout::Nchw);
    let v = store.get("conv1.weight").unwrap();
    v.set(&v.zeros_like().unwrap()).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 64, 8, 8), &Device::Cpu).unwrap();
    let out = block.forward_t(&x, true).unwrap();
    let diff = (out - &x).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(diff, 0.0);
}

/// Values uniform in [-1, 1) from a seeded generator.
fn seeded(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n = shape.0 * shape.1 * shape.2 * shape.3;
    let values: Vec<f64> = (0..n).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
}

/// Central differences against candle's backward pass through BN (training
/// mode), ReLU, convolutions and the projection shortcut, in f64, in both
/// activation layouts (NHWC is the CPU's custom-kernel path).
#[test]
fn block_gradients_match_finite_differences() {
    let cfg = WrnConfig::new("B(3,1)".parse().unwrap(), 1, 1, 0.0, 3, 10).unwrap();
    let plan = cfg.plan();
    let block_plan = &plan.groups[1].blocks[0]; // 16 -> 32, stride 2, with shortcut
    for (layout, input, output) in
        [(Layout::Nchw, (3, 16, 6, 6), (3, 32, 3, 3)), (Layout::Nhwc, (3, 6, 6, 16), (3, 3, 3, 32))]
    {
        let (block, store) = build_block(block_plan, DType::F64, layout);
        // Seeded: central differences are wrong where a step moves a value
        // across the ReLU's kink, so unseeded data made this test fail now
        // and then; these inputs keep every checked entry clear of it.
        let x = Var::from_tensor(&seeded(input, 1)).unwrap();
        let probe = seeded(output, 2);
        let objective = || -> f64 {
            let out = block.forward_t(x.as_tensor(), true).unwrap();
            (out * &probe).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap()
        };
        let out = block.forward_t(x.as_tensor(), true).unwrap();
        let grads = (out * &probe).unwrap().sum_all().unwrap().backward().unwrap();
        let mut checked = 0;
        let mut vars: Vec<(String, Var)> = store.params();
        vars.push(("input".into(), x.clone()));
        for (name, var) in vars {
            let analytic = grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
            let n = analytic.len();
            for idx in [0, n / 3, n - 1] {
                let base = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
                let eps = 1e-5;
                let at = |delta: f64| {
                    let mut v = base.clone();
                    v[idx] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap()).unwrap();
                    objective()
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(base, var.shape(), &Device::Cpu).unwrap()).unwrap();
                let err = (numeric - analytic[idx]).abs() / (1.0 + numeric.abs());
                assert!(err < 1e-5, "{layout:?} {name}[{idx}]: numeric {numeric} vs analytic {}", analytic[idx]);
                checked += 1;
            }
        }
        assert!(checked >= 3 * 8, "checked {checked} entries");
    }
}

/// The CPU's NHWC custom-kernel model computes the same function as candle's
/// NCHW conv2d, for every kernel size and stride a WRN uses.
#[test]
fn both_activation_layouts_compute_the_same_network() {
    let cfg = WrnConfig::new("B(1,3,1)".parse().unwrap(), 2, 1, 0.0, 3, 10).unwrap();
    let nchw = Wrn::with_layout(&cfg, 4, DType::F64, &Device::Cpu, Layout::Nchw).unwrap();
    let nhwc = Wrn::with_layout(&cfg, 4, DType::F64, &Device::Cpu, Layout::Nhwc).unwrap();
    let x = Tensor::randn(0f64, 1.0, (3, 3, 32, 32), &Device::Cpu).unwrap();
    for train in [true, false] {
        let a = nchw.forward_t(&x, train).unwrap();
        let b = nhwc.forward_t(&x, train).unwrap();
        let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
        assert!(diff < 1e-9, "train={train}: layouts differ by {diff}");
    }
}

#[test]
fn evaluation_mode_is_deterministic_and_uses_running_statistics() {
    let cfg = WrnConfig::wrn(10, 1, Dataset::Cifar10).unwrap();
    let model = Wrn::new(&cfg, 0, DType::F32, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (4, 3, 32, 32), &Device::Cpu).unwrap();
    let a = model.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    model.reseed_dropout(0, 0, 0);
    model.forward_t(&x, true).unwrap(); // updates the running statistics
    let b = model.forward_t(&x, false).unwrap().to_vec2::<f32>().unwrap();
    assert_ne!(a, b, "a training pass moves the running statistics");
    let rm = model.store().get("head.bn.running_mean").unwrap().as_tensor().to_vec1::<f32>().unwrap();
    assert!(rm.iter().any(|m| *m != 0.0));
}

#[test]
fn module_forward_of_a_conv_matches_its_spec() {
    // Guards the stride and padding of strided 3x3 and 1x1 convolutions.
    let plan = WrnConfig::new("B(1,3)".parse().unwrap(), 1, 1, 0.0, 3, 10).unwrap().plan();
    let spec = plan.groups[2].blocks[0].convs[0];
    let store = TensorStore::default();
    let vb = VarBuilder::from_backend(Box::new(SeededInit { seed: 0, store }), DType::F32, Device::Cpu);
    let conv = widesweep_worker::wrn::layers::Conv::new(spec, Layout::Nchw, vb).unwrap();
    let x = Tensor::zeros((1, spec.in_channels, spec.input_size, spec.input_size), DType::F32, &Device::Cpu).unwrap();
    let y = conv.forward(&x).unwrap();
    assert_eq!(y.dims(), &[1, spec.out_channels, spec.output_size(), spec.output_size()]);
}

/// Inverted dropout: about p of the activations are zeroed, the rest
/// scaled by 1 / (1 - p), from the seeded stream; identity in evaluation.
#[test]
fn dropout_masks_are_seeded_and_inverted() {
    use widesweep_worker::wrn::layers::Dropout;
    let masks = MaskSource::default();
    let dropout = Dropout::new(0.3, Layout::Nchw, masks.clone(), Recalibration::default());
    let x = Tensor::ones((4, 16, 32, 32), DType::F32, &Device::Cpu).unwrap();
    let draw = || {
        masks.reseed(widesweep_worker::rng::stream(1, 2, 3, widesweep_worker::rng::Purpose::Dropout));
        dropout.forward_t(&x, true).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap()
    };
    let (a, b) = (draw(), draw());
    assert_eq!(a, b, "same stream, same mask");
    let zeros = a.iter().filter(|v| **v == 0.0).count() as f64 / a.len() as f64;
    assert!((zeros - 0.3).abs() < 0.01, "dropped fraction {zeros}");
    assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.7).abs() < 1e-6));
    let eval = dropout.forward_t(&x, false).unwrap();
    assert_eq!(eval.sum_all().unwrap().to_scalar::<f32>().unwrap(), x.elem_count() as f32);
}

/// Logits, loss and the gradient of every parameter after one training
/// pass over a seeded batch (dropout masks from step (0, 0, 0)).
fn one_training_pass(model: &Wrn) -> (Tensor, f64, Vec<(String, Tensor)>) {
    let x = seeded((4, 3, 32, 32), 5).to_dtype(DType::F32).unwrap();
    let labels = Tensor::new(&[3u32, 1, 4, 1], &Device::Cpu).unwrap();
    model.reseed_dropout(0, 0, 0);
    let logits = model.forward_t(&x, true).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let params = model.store().params();
    let grads = params.iter().map(|(name, var)| (name.clone(), grads.get(var.as_tensor()).unwrap().clone())).collect();
    (logits, loss.to_scalar::<f32>().unwrap() as f64, grads)
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// bf16 mixed precision computes the f32 network to within bf16's rounding:
/// same initial weights, logits and loss within a few percent, gradients
/// pointing the same way; master weights, their gradients, the running
/// statistics and the logits stay f32.
#[test]
fn bf16_mixed_precision_tracks_f32_and_keeps_f32_master_weights() {
    let cfg = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 2, 0.3, 3, 10).unwrap();
    // NCHW in both: dropout masks are drawn in memory order.
    let full = Wrn::with_layout(&cfg, 3, DType::F32, &Device::Cpu, Layout::Nchw).unwrap();
    let mixed = ModelOptions::for_device(&Device::Cpu, Precision::Bf16);
    assert_eq!(mixed.layout, Layout::Nchw, "bf16 runs on candle's operators");
    let half = Wrn::with_options(&cfg, 3, DType::F32, &Device::Cpu, mixed).unwrap();
    let (logits_f32, loss_f32, grads_f32) = one_training_pass(&full);
    let (logits_bf16, loss_bf16, grads_bf16) = one_training_pass(&half);
    assert_eq!(logits_bf16.dtype(), DType::F32, "the loss is computed from f32 logits");
    let (a, b) = (flat(&logits_f32), flat(&logits_bf16));
    let scale = a.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(&b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(worst < 0.05 * scale, "logits differ by {worst} (largest {scale})");
    assert!((loss_f32 - loss_bf16).abs() < 0.02 * loss_f32, "loss {loss_f32} (f32) vs {loss_bf16} (bf16)");
    assert_eq!(grads_f32.len(), grads_bf16.len());
    for ((name, g32), (_, g16)) in grads_f32.iter().zip(&grads_bf16) {
        assert_eq!(g16.dtype(), DType::F32, "{name}: the optimizer gets f32 gradients");
        let (x, y) = (flat(g32), flat(g16));
        let dot: f64 = x.iter().zip(&y).map(|(p, q)| p * q).sum();
        let norm = |v: &[f64]| v.iter().map(|p| p * p).sum::<f64>().sqrt();
        let cosine = dot / (norm(&x) * norm(&y)).max(1e-30);
        // bf16 rounding, amplified by batch norm's backward pass over 4
        // images, leaves the gradients nearest the input 0.25-0.3 off in
        // relative L2 (cosine 0.96 on this draw of dropout masks; the
        // self-check measures the same); a wrong gradient is near 0 or below.
        assert!(cosine > 0.95, "{name}: gradients of f32 and bf16 point apart (cosine {cosine})");
    }
    for (name, var) in half.store().all() {
        assert_eq!(var.dtype(), DType::F32, "{name} is stored in f32");
    }
    let running = |model: &Wrn| flat(model.store().get("head.bn.running_var").unwrap().as_tensor());
    let (v32, v16) = (running(&full), running(&half));
    assert!(v32.iter().zip(&v16).all(|(p, q)| (p - q).abs() < 0.05 * p.abs().max(1e-3)), "{v32:?} vs {v16:?}");
}

#[test]
fn bf16_in_the_nhwc_kernels_is_refused_with_what_works() {
    let cfg = WrnConfig::wrn(10, 1, Dataset::Cifar10).unwrap();
    let options = ModelOptions { layout: Layout::Nhwc, precision: Precision::Bf16 };
    let err = Wrn::with_options(&cfg, 0, DType::F32, &Device::Cpu, options).err().expect("refused").to_string();
    assert!(err.contains("bf16") && err.contains("nchw"), "{err}");
}

/// Precise batch norm replaces the running statistics outright: two models
/// whose statistics differ (one ran extra training passes) evaluate alike
/// once both are re-estimated on the same batches, and re-estimating on a
/// batch twice gives what once gives (the exact average of equal terms).
#[test]
fn re_estimated_batch_norm_forgets_the_momentum_statistics() {
    let config = WrnConfig::wrn(10, 1, Dataset::FashionMnist).unwrap();
    let device = Device::Cpu;
    let build = || Wrn::new(&config, 3, DType::F32, &device).unwrap();
    let batch = |offset: f64| (Tensor::randn(0f32, 1f32, (8, 1, 32, 32), &device).unwrap() + offset).unwrap();
    let (a, b) = (build(), build());
    let probe = batch(0.0);
    for shift in [2.0, -1.0, 3.0] {
        b.forward_t(&batch(shift), true).unwrap();
    }
    let logits = |m: &Wrn| m.forward_t(&probe, false).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let max_diff = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
    assert!(max_diff(&logits(&a), &logits(&b)) > 1e-3, "the extra passes moved b's statistics");
    let batches = [batch(0.5), batch(-0.5)];
    for model in [&a, &b] {
        let used = model.recalibrate_batch_norm(batches.iter().map(|t| Ok(t.clone()))).unwrap();
        assert_eq!(used, 2);
    }
    assert!(max_diff(&logits(&a), &logits(&b)) < 1e-5, "same batches, same statistics");
    let once = build();
    once.recalibrate_batch_norm([Ok(batches[0].clone())]).unwrap();
    let twice = build();
    twice.recalibrate_batch_norm([Ok(batches[0].clone()), Ok(batches[0].clone())]).unwrap();
    assert!(max_diff(&logits(&once), &logits(&twice)) < 1e-5, "the average of a batch with itself");
    // Dropout is off while re-estimating: no mask stream is needed.
    let dropped = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 1, 0.3, 1, 10).unwrap();
    let with_dropout = Wrn::new(&dropped, 3, DType::F32, &device).unwrap();
    with_dropout.recalibrate_batch_norm([Ok(batch(0.0))]).unwrap();
}
