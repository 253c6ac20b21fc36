//! The self-check's comparison and fallback, on the CPU: its kernels
//! against their own f64 reference, candle's generic operators against the
//! same, and a forced mismatch (a perturbed gradient) that must send a slot
//! to the generic path, or, where there is none, stop it.

use widesweep_arch::Precision;
use widesweep_worker::candle::{Device, Tensor};
use widesweep_worker::selfcheck::{self, CheckReport, SelfCheckError, SelfCheckMode, compare};
use widesweep_worker::wrn::ModelOptions;
use widesweep_worker::wrn::layers::Layout;

#[test]
fn every_cpu_path_agrees_with_the_f64_reference() {
    for (layout, precision) in
        [(Layout::Nhwc, Precision::F32), (Layout::Nchw, Precision::F32), (Layout::Nchw, Precision::Bf16)]
    {
        let report = selfcheck::check(&Device::Cpu, ModelOptions { layout, precision }, false).unwrap();
        assert!(report.passed(), "{layout:?} {precision:?}: {report}");
        // Logits, loss, and the gradient of each of the network's parameters.
        assert!(report.compared > 20, "{report}");
        let bound = if precision == Precision::F32 { 1e-4 } else { report.tolerance };
        assert!(report.worst.relative < bound, "{layout:?} {precision:?}: {report}");
    }
}

#[test]
fn a_mismatch_falls_back_to_candle_s_generic_operators() {
    let (options, reports) = selfcheck::choose(&Device::Cpu, Precision::F32, SelfCheckMode::On).unwrap();
    assert_eq!(options.layout, Layout::Nhwc, "the CPU's own kernels when they agree");
    assert_eq!(reports.len(), 1);

    let (options, reports) = selfcheck::choose(&Device::Cpu, Precision::F32, SelfCheckMode::FailFastest).unwrap();
    assert_eq!(options.layout, Layout::Nchw, "candle's generic operators after a mismatch");
    let [fastest, generic] = &reports[..] else { panic!("two checks: {reports:?}") };
    assert!(!fastest.passed() && fastest.options.layout == Layout::Nhwc, "{fastest}");
    // The perturbation flipped one gradient's sign: found, named, measured.
    assert!(fastest.worst.name.ends_with(" gradient"), "{fastest}");
    assert!((fastest.worst.relative - 2.0).abs() < 1e-3, "{fastest}");
    assert!(fastest.to_string().contains("DISAGREED"), "{fastest}");
    assert!(generic.passed(), "{generic}");

    let (options, reports) = selfcheck::choose(&Device::Cpu, Precision::F32, SelfCheckMode::Off).unwrap();
    assert_eq!((options.layout, reports.len()), (Layout::Nhwc, 0), "off checks nothing");
}

#[test]
fn without_a_path_that_agrees_nothing_is_chosen() {
    // bf16 runs on candle's operators only: a mismatch leaves no path.
    let error = selfcheck::choose(&Device::Cpu, Precision::Bf16, SelfCheckMode::FailFastest).unwrap_err();
    let SelfCheckError::NoPath { reports } = &error else { panic!("{error}") };
    assert_eq!(reports.len(), 1);
    assert!(error.to_string().contains("no kernel path of this device agrees"), "{error}");
}

/// A kernel that cannot run (cuDNN without an algorithm for a shape, a
/// failed launch) is a failed check, named, never a pass.
#[test]
fn a_pass_that_fails_to_run_disagrees() {
    let options = ModelOptions { layout: Layout::Nhwc, precision: Precision::F32 };
    let error = widesweep_worker::candle::Error::Msg("CUDNN_STATUS_NOT_SUPPORTED\nbacktrace".into());
    let report = CheckReport::failed(options, &error);
    assert!(!report.passed());
    assert_eq!(report.to_string(), "FAILED to run: CUDNN_STATUS_NOT_SUPPORTED");
}

#[test]
fn the_comparison_is_relative_to_the_reference_and_catches_nan() {
    let oracle = Tensor::new(&[2.0f64, -4.0, 1.0], &Device::Cpu).unwrap();
    let close = Tensor::new(&[2.0f32, -4.004, 1.0], &Device::Cpu).unwrap();
    let error = compare("w", &close, &oracle).unwrap();
    assert!((error.relative - 0.004 / 21f64.sqrt()).abs() < 1e-6, "L2 over L2: {error:?}");
    let nan = Tensor::new(&[2.0f32, f32::NAN, 1.0], &Device::Cpu).unwrap();
    assert_eq!(compare("w", &nan, &oracle).unwrap().relative, f64::INFINITY);
    let zeros = Tensor::zeros(3, widesweep_worker::candle::DType::F64, &Device::Cpu).unwrap();
    let absolute = compare("z", &close, &zeros).unwrap().relative;
    assert!((absolute - (4.0f64 + 4.004 * 4.004 + 1.0).sqrt()).abs() < 1e-5, "absolute when the reference is 0");
    let short = Tensor::new(&[2.0f32, -4.0], &Device::Cpu).unwrap();
    assert!(compare("w", &short, &oracle).unwrap_err().to_string().contains("shape"));
}
