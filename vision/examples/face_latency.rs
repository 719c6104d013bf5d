//! Per-face latency of the face pipeline, step by step: detect (YuNet on the
//! whole frame), align, quality, embed; and a whole `/face-detect` request's
//! (`largest_face` from a session made for it, as the daemon makes one per
//! request). Prints one markdown table.
//!
//! ```text
//! cargo run --release -p wayside-vision --example face_latency [-- RUNS]
//! ```
//!
//! Models and photos come from `${WAYSIDE_MODELS_DIR:-models/cache}`
//! (scripts/setup-models.sh). Single-threaded tract, as `runtime` defaults.

use std::path::PathBuf;
use std::time::Instant;

use serde::Deserialize;
use wayside_vision::RgbFrame;
use wayside_vision::detect::decode::DecodeSpec;
use wayside_vision::detect::letterbox::Preprocess;
use wayside_vision::face::detect::{FaceDetector, FaceDetectorConfig};
use wayside_vision::face::embed::Embedder;
use wayside_vision::face::{FaceEngine, QualityConfig};

/// As in the daemon: model sessions replay planned tensor arenas.
#[global_allocator]
static ALLOCATOR: wayside_arena::Replaying = wayside_arena::Replaying;

#[derive(Deserialize)]
struct Manifest {
    model: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    file: String,
    input: Preprocess,
    output: toml::Table,
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    wayside_arena::map_large_allocations();
    let runs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("models/cache"));
    let manifest: Manifest =
        toml::from_str(&std::fs::read_to_string(root.join("models/manifest.toml"))?)?;
    let entry =
        |id: &str| -> Result<(PathBuf, Preprocess, DecodeSpec), Box<dyn std::error::Error>> {
            let e = manifest
                .model
                .iter()
                .find(|m| m.id == id)
                .ok_or(id.to_string())?;
            let decode = toml::Value::Table(e.output.clone()).try_into()?;
            Ok((dir.join(&e.file), e.input.clone(), decode))
        };
    let (det_path, det_in, det_out) = entry("face-detector")?;
    let detector = FaceDetector::load(&det_path, det_in, det_out, FaceDetectorConfig::default())?;
    println!(
        "| embedder | photo | faces | detect ms / frame | align ms / face | quality ms / face | embed ms / face | total, one face | a request's session: largest face ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for embedder_id in ["face-embedder", "face-embedder-sface"] {
        let (emb_path, emb_in, emb_out) = entry(embedder_id)?;
        let engine = FaceEngine::new(
            detector.clone(),
            Embedder::load(&emb_path, emb_in, emb_out)?,
            QualityConfig::default(),
        )?;
        let mut s = engine.session();
        for photo in ["obama.jpg", "zidane.jpg"] {
            let img = image::open(dir.join("media").join(photo))?.to_rgb8();
            let frame = RgbFrame::from_image(&img)?;
            let (mut det, mut align, mut quality, mut embed) = (vec![], vec![], vec![], vec![]);
            let mut request = vec![];
            let mut n = 0;
            for i in 0..runs + 3 {
                let t = Instant::now();
                let faces = s.detect(frame)?;
                let d = t.elapsed().as_secs_f64() * 1e3;
                for f in &faces {
                    let t = Instant::now();
                    let crop = s.align(&frame, f)?;
                    let a = t.elapsed().as_secs_f64() * 1e3;
                    let t = Instant::now();
                    std::hint::black_box(s.quality(f, &crop));
                    let q = t.elapsed().as_secs_f64() * 1e3;
                    let t = Instant::now();
                    std::hint::black_box(s.embed(&crop)?);
                    let e = t.elapsed().as_secs_f64() * 1e3;
                    if i >= 3 {
                        align.push(a);
                        quality.push(q);
                        embed.push(e);
                    }
                }
                let t = Instant::now();
                std::hint::black_box(engine.session().largest_face(&frame)?);
                if i >= 3 {
                    det.push(d);
                    request.push(t.elapsed().as_secs_f64() * 1e3);
                }
                n = faces.len();
            }
            let (d, a, q, e) = (
                median_ms(det),
                median_ms(align),
                median_ms(quality),
                median_ms(embed),
            );
            println!(
                "| {embedder_id} | {photo} | {n} | {d:.1} | {a:.2} | {q:.2} | {e:.1} | {:.1} | {:.1} |",
                d + a + q + e,
                median_ms(request)
            );
        }
    }
    Ok(())
}
