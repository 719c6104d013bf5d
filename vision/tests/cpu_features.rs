//! `models.cpu_features` reaches tract's kernel dispatch. A test binary of
//! its own, with one test: tract fixes its instruction set once per process.

use tract_linalg::MmmDispatch;
use tract_onnx::prelude::DatumType;
use wayside_vision::runtime::cpu::{CpuFeatures, CpuFeaturesError, set_cpu_features};

/// A feature this CPU has, whose kernels tract would otherwise run.
fn a_feature_of_this_cpu() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    return if std::is_x86_feature_detected!("avx512f") {
        "avx512f"
    } else {
        "fma"
    };
    #[cfg(not(target_arch = "x86_64"))]
    return "fp16";
}

#[test]
fn an_edit_takes_a_feature_from_tracts_kernels_once_and_for_all() {
    let name = a_feature_of_this_cpu();
    let edit: CpuFeatures = format!("-{name}").parse().unwrap();
    let CpuFeatures::Edit(edits) = &edit else {
        panic!("{edit:?}")
    };
    let feature = edits[0].feature;
    let choice = set_cpu_features(&edit).unwrap();
    assert!(!choice.isa.split(',').any(|f| f == name), "{choice}");

    let dispatch = MmmDispatch::native();
    let needing: Vec<&str> = dispatch
        .runnable()
        .iter()
        .filter(|k| k.isa().needs.contains(&feature))
        .map(|k| k.name())
        .collect();
    assert!(needing.is_empty(), "{choice}: still runnable {needing:?}");
    // The detector's widest 3×3 convolution as a product: 64 output
    // channels, 64 × 9 inputs, 52 × 36 positions.
    let kernel = dispatch
        .preferred_kernel(DatumType::F32, Some(64), Some(576), Some(52 * 36))
        .unwrap();
    assert!(!kernel.isa().needs.contains(&feature), "{}", kernel.name());

    // A second answer in the same process is refused, not ignored.
    let err = set_cpu_features(&CpuFeatures::Native).unwrap_err();
    assert!(matches!(err, CpuFeaturesError::Twice(_)), "{err}");
    // The same one again is no change.
    assert_eq!(set_cpu_features(&edit).unwrap(), choice);
}
