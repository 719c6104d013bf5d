//! tract against onnxruntime: every model in the manifest, run by tract on the
//! exact tensor that `models/crosscheck.py` gave onnxruntime, must produce the
//! same outputs within a stated tolerance, on the kernels the daemon's
//! default `models.cpu_features` leaves tract on this machine.

mod common;

use std::fs::File;

use ndarray_npy::ReadNpyExt;
use tract_onnx::prelude::tract_ndarray::ArrayD;
use wayside_vision::Kind;
use wayside_vision::detect::Detection;
use wayside_vision::detect::decode::Output;
use wayside_vision::detect::nms::nms;
use wayside_vision::runtime::cpu::{CpuFeatures, set_cpu_features};
use wayside_vision::runtime::{self, Model};

/// Tolerance on each f32 output, relative to its largest magnitude: the two
/// runtimes differ only by summation order.
const TOLERANCE: f32 = 1e-3;

/// int8 kernels round differently in each runtime (box logits differ by up to
/// ~5 % of their range), so quantised detectors are compared on what they
/// detect: the same boxes at IoU >= 0.9.
fn same_detections(
    entry: &common::Entry,
    tract: &[Vec<f32>],
    ort: &[ArrayD<f32>],
    shapes: &[Vec<usize>],
) -> Result<usize, String> {
    let spec = entry.decode();
    let decode = |outs: Vec<Output>| {
        let c = spec
            .decode(&outs, entry.input.width, entry.input.height, 0.3, |_| true)
            .unwrap();
        nms(
            c.into_iter()
                .map(|c| Detection {
                    bbox: c.bbox,
                    score: c.score,
                    class_id: c.class_id,
                    kind: Kind::Vehicle,
                })
                .collect(),
            0.5,
        )
    };
    let a = decode(
        tract
            .iter()
            .zip(shapes)
            .map(|(d, s)| Output { shape: s, data: d })
            .collect(),
    );
    let b = decode(
        ort.iter()
            .map(|o| Output {
                shape: o.shape(),
                data: o.as_slice().unwrap(),
            })
            .collect(),
    );
    // Boxes near the threshold may fall on either side of it.
    for (x, y, who) in [(&a, &b, "onnxruntime"), (&b, &a, "tract")] {
        for d in x.iter().filter(|d| d.score >= 0.4) {
            if !y
                .iter()
                .any(|e| e.class_id == d.class_id && e.bbox.iou(&d.bbox) >= 0.9)
            {
                return Err(format!("{d:?} has no match in {who}'s detections"));
            }
        }
    }
    Ok(a.len())
}

#[test]
fn every_model_agrees_with_onnxruntime() {
    let manifest = common::manifest();
    let kernels = set_cpu_features(&CpuFeatures::Auto).unwrap();
    let mut report = vec![format!("tract's kernels for {kernels}")];
    let mut failures = Vec::new();
    for entry in &manifest.model {
        let dir = common::models_dir().join("crosscheck").join(&entry.id);
        let read = |name: &str| -> ArrayD<f32> {
            let path = dir.join(name);
            let f = File::open(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (run scripts/setup-models.sh)", path.display())
            });
            ArrayD::<f32>::read_npy(f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        };
        let input = read("input.npy");
        let model = match Model::load(&entry.path(), &[input.shape().to_vec()]) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: does not load in tract: {e:#}", entry.id));
                continue;
            }
        };
        let outputs = model
            .session()
            .unwrap()
            .run(vec![input.into()])
            .expect("runs in tract");
        let wants: Vec<ArrayD<f32>> = (0..outputs.len())
            .map(|i| read(&format!("output_{i}.npy")))
            .collect();
        if entry.id.contains("int8") {
            let data: Vec<Vec<f32>> = outputs
                .iter()
                .map(|t| runtime::f32s(t).unwrap().to_vec())
                .collect();
            let shapes: Vec<Vec<usize>> = outputs.iter().map(|t| t.shape().to_vec()).collect();
            match same_detections(entry, &data, &wants, &shapes) {
                Ok(n) => report.push(format!(
                    "{:<22} same {n} detections at IoU >= 0.9",
                    entry.id
                )),
                Err(e) => failures.push(format!("{}: {e}", entry.id)),
            }
            continue;
        }
        for (i, (got, want)) in outputs.iter().zip(wants).enumerate() {
            assert_eq!(got.shape(), want.shape(), "{} output {i} shape", entry.id);
            let got = runtime::f32s(got).unwrap();
            let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let max_diff = got
                .iter()
                .zip(want.iter())
                .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            let rel = max_diff / scale;
            report.push(format!(
                "{:<22} out {i}: max |diff| {max_diff:.2e} = {rel:.2e} of max {scale:.3}",
                entry.id
            ));
            if rel > TOLERANCE {
                failures.push(format!(
                    "{} output {i}: tract and onnxruntime differ by {rel:.3e} of the output range",
                    entry.id
                ));
            }
        }
    }
    println!("{}", report.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
