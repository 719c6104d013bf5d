//! `wayside process VIDEO`: the `/video` pipeline from the command line, with
//! a progress bar; prints the same counts JSON.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use wayside_vision::count::CountingLine;

use crate::config::Config;
use crate::pipeline::{Job, JobSpec};

#[derive(Args)]
pub struct ProcessArgs {
    /// Video file (anything GStreamer decodes).
    video: PathBuf,
    /// Sampling interval in milliseconds.
    #[arg(long)]
    interval: u64,
    /// Counting line "x1,y1,x2,y2" in 0..1 frame coordinates.
    #[arg(long)]
    line: Option<CountingLine>,
    /// Write the annotated H.264 MP4 here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print only the JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

pub fn run(config: &Config, args: ProcessArgs) -> Result<()> {
    anyhow::ensure!(
        args.interval > 0,
        "--interval: must be a positive number of milliseconds"
    );
    let engine = Arc::new(crate::vision::load_engine(config, false)?);
    let spec = JobSpec {
        interval_ms: args.interval,
        line: args.line,
        annotated_video: args.out.clone(),
        sample_jpegs: false,
        // Faces are forwarded by the daemon, whose outbox outlives a job.
        sightings: None,
    };
    let job = Job::open(engine, &args.video, spec)
        .with_context(|| format!("opening {}", args.video.display()))?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(job.info().duration_ms.unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} ms of video  {per_sec}  eta {eta}")
                .expect("valid template"),
        );
        bar
    };
    let summary = job.run(|s| {
        bar.set_position(s.timestamp);
        true
    })?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(out) = args.out {
        eprintln!("annotated video: {}", out.display());
    }
    Ok(())
}
