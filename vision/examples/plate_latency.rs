//! Per-plate latency of the plate pipeline, step by step: detect (the plate
//! detector, or the text-line detector, on a vehicle crop), rectify,
//! recognise; and the whole `read_region` call. Prints one markdown table.
//!
//! ```text
//! cargo run --release -p wayside-vision --example plate_latency [-- RUNS [SEED [DETECTOR]]]
//! ```
//!
//! DETECTOR is a manifest id: `plate-detector` (the default) or
//! `plate-text-detector`.
//!
//! Models and photos come from `${WAYSIDE_MODELS_DIR:-models/cache}`
//! (scripts/setup-models.sh); the plates are the synthetic ones of the
//! accuracy test (`fonts-wqy-microhei` must be installed). Single-threaded
//! tract, as `runtime` defaults.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/plate_render.rs"]
mod render;

use std::time::Instant;

use wayside_vision::RgbFrame;
use wayside_vision::detect::decode::DecodeSpec;
use wayside_vision::plate::{
    GrammarConfig, PlateDetector, PlateDetectorConfig, PlateEngine, Recognizer, RectifyConfig,
    RegionConfig,
};

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize, default: u64| -> Result<u64, std::num::ParseIntError> {
        std::env::args().nth(i).map_or(Ok(default), |s| s.parse())
    };
    let (runs, seed) = (arg(1, 20)? as usize, arg(2, 1)?);
    let detector = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "plate-detector".into());
    let (det, rec) = (common::model(&detector), common::model("plate-recognizer"));
    let rec_out = rec.decode();
    let DecodeSpec::Ctc { dict, .. } = &rec_out else {
        return Err("plate-recognizer is not decoded as ctc".into());
    };
    let dictionary = std::fs::read_to_string(common::models_dir().join(dict))?;
    let engine = PlateEngine::new(
        PlateDetector::load(
            &det.path(),
            det.input.clone(),
            det.decode(),
            PlateDetectorConfig::default(),
        )?,
        Recognizer::load(&rec.path(), rec.input.clone(), rec_out.clone(), &dictionary)?,
        RectifyConfig::default(),
        GrammarConfig::default(),
    )?;
    let mut s = engine.session();
    let font = render::font();
    let mut rng = render::Rng::new(seed);
    println!(
        "| scene | searched region | plate px | read | detect ms / region | rectify ms / plate | recognise ms / plate | read_region ms, one plate |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for scene in &render::SCENES {
        let photo = image::open(common::media(scene.photo))?.to_rgb8();
        let text = render::random_text(&mut rng, render::Style::Blue);
        let sample = render::sample(
            &font,
            scene,
            &photo,
            &text,
            render::Style::Blue,
            &render::Conditions::default(),
            &mut rng,
        );
        // What read_region gives the detector: the box's lower part, grown
        // by the margin (RegionConfig's defaults), here copied out.
        let v = sample.vehicle;
        let region = RegionConfig::default();
        let top = v.y2 - v.height() * region.lower;
        let (mx, my) = (v.width() * region.margin, (v.y2 - top) * region.margin);
        let (x0, y0) = ((v.x1 - mx).max(0.0), (top - my).max(0.0));
        let (x1, y1) = (
            (v.x2 + mx).min(sample.frame.width() as f32),
            (v.y2 + my).min(sample.frame.height() as f32),
        );
        let crop = image::imageops::crop_imm(
            &sample.frame,
            x0 as u32,
            y0 as u32,
            (x1 - x0) as u32,
            (y1 - y0) as u32,
        )
        .to_image();
        let crop_frame = RgbFrame::from_image(&crop)?;
        let frame = RgbFrame::from_image(&sample.frame)?;
        let (mut det, mut rect, mut rec, mut total) = (vec![], vec![], vec![], vec![]);
        let mut read = String::from("-");
        for i in 0..runs + 3 {
            let t = Instant::now();
            let plates = s.detect(&crop_frame)?;
            let d = t.elapsed().as_secs_f64() * 1e3;
            if let Some(p) = plates.first() {
                let t = Instant::now();
                let straight = s.rectify(&crop_frame, p)?;
                let r = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                read = s.recognize(&straight)?.text;
                let c = t.elapsed().as_secs_f64() * 1e3;
                if i >= 3 {
                    rect.push(r);
                    rec.push(c);
                }
            }
            let t = Instant::now();
            std::hint::black_box(s.read_region(&frame, v, &region)?);
            let all = t.elapsed().as_secs_f64() * 1e3;
            if i >= 3 {
                det.push(d);
                total.push(all);
            }
        }
        if rect.is_empty() {
            rect.push(f64::NAN);
            rec.push(f64::NAN);
        }
        println!(
            "| {} | {}×{} | {:.0}×{:.0} | {} ({}) | {:.1} | {:.2} | {:.1} | {:.1} |",
            scene.name,
            crop.width(),
            crop.height(),
            sample.plate_px.0,
            sample.plate_px.1,
            read,
            if read == text { "right" } else { "wrong" },
            median_ms(det),
            median_ms(rect),
            median_ms(rec),
            median_ms(total)
        );
    }
    Ok(())
}
