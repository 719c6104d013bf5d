//! `wayside detect IMAGE`: detections of one image as JSON, optionally drawn.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use wayside_vision::{Detection, Kind, RgbFrame};

use crate::config::Config;

#[derive(Args)]
pub struct DetectArgs {
    /// Image to analyse (JPEG or PNG).
    image: PathBuf,
    /// Write the image with the detections drawn on it here.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    image: String,
    width: u32,
    height: u32,
    pedestrians: usize,
    vehicles: usize,
    /// `[width, height]` the detector ran at: its padding trimmed to the image.
    input_size: Option<[u32; 2]>,
    /// The first run, which also makes tract's plan for the image's shape.
    first_inference_ms: f64,
    /// A second run on the same image: what each frame of that shape costs.
    inference_ms: f64,
    detections: Vec<JsonDetection<'a>>,
}

#[derive(Serialize)]
struct JsonDetection<'a> {
    kind: Kind,
    class: &'a str,
    score: f32,
    /// `[x1, y1, x2, y2]` in image pixels.
    bbox: [f32; 4],
}

pub fn run(config: &Config, args: DetectArgs) -> Result<()> {
    let detector = crate::vision::load_detector(config)?;
    let img = image::open(&args.image)
        .with_context(|| format!("reading image {}", args.image.display()))?
        .to_rgb8();
    let frame = RgbFrame::from_image(&img)?;
    let mut session = detector.session();
    let mut timed = || -> Result<_> {
        let started = Instant::now();
        let detections = session.detect(frame)?;
        Ok((detections, started.elapsed().as_secs_f64() * 1e3))
    };
    let (_, first_inference_ms) = timed()?;
    let (detections, inference_ms) = timed()?;

    let count = |k: Kind| detections.iter().filter(|d| d.kind == k).count();
    let report = Report {
        image: args.image.display().to_string(),
        width: img.width(),
        height: img.height(),
        pedestrians: count(Kind::Pedestrian),
        vehicles: count(Kind::Vehicle),
        input_size: session.input_size(),
        first_inference_ms,
        inference_ms,
        detections: detections.iter().map(json_detection).collect(),
    };
    println!("{}", serde_json::to_string_pretty(&report)?);

    if let Some(out) = args.out {
        let mut canvas = img;
        wayside_vision::annotate::draw_detections(&mut canvas, &detections);
        canvas
            .save(&out)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

fn json_detection(d: &Detection) -> JsonDetection<'static> {
    JsonDetection {
        kind: d.kind,
        class: wayside_vision::classes::COCO[d.class_id],
        score: d.score,
        bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
    }
}
