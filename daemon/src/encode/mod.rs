//! Video encoding: annotated RGB frames into a browser-playable H.264 MP4.
//!
//! An [`Encoder`] owns one pipeline
//!
//! ```text
//! appsrc (RGB, variable rate) ! videoconvert ! I420 ! x264enc ! mp4mux faststart ! filesink
//! ```
//!
//! (a hardware encoder takes x264enc's place, followed by `h264parse`).
//!
//! It is the last stage of `POST /video`: the annotator pushes each drawn
//! frame with its video time, and [`Encoder::finish`] closes the file that
//! `GET /media/…` then serves. The file is what every browser plays: H.264
//! (High profile, 4:2:0) in MP4 with the index (moov) before the media data,
//! so playback can start before the whole file has arrived.
//!
//! Frames arrive at irregular times (only tracked frames are drawn), so the
//! stream is declared variable rate and each frame lasts until the next one:
//! a frame is held back until its successor tells its duration.
//!
//! Encoder choice: `x264enc` everywhere, unless a hardware H.264 encoder is
//! installed — `nvv4l2h264enc` (Jetson with NVENC) or `v4l2h264enc` (Raspberry
//! Pi 4; the Pi 5 has no H.264 encoder block, so it uses x264). A hardware
//! pipeline that cannot start (no device, busy) falls back to x264. The
//! hardware paths are untested here: the x86 CI machine has neither.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use thiserror::Error;

use crate::decode::init_gstreamer;

#[cfg(test)]
mod tests;

/// Frames queued in the appsrc before `push` waits: the encoder applies
/// back-pressure instead of frames piling up in memory.
const QUEUED_FRAMES: u64 = 3;

/// How often a full queue is checked for room (and the bus for errors).
const ROOM_POLL: Duration = Duration::from_millis(5);

/// Duration given to the last frame (and the only one, if alone) when no
/// spacing between frames is known: one frame at 25 fps.
const DEFAULT_FRAME: Duration = Duration::from_millis(40);

/// How long `finish` waits for the muxer: it drains the encoder, then copies
/// the media data after the index, which takes a while for long videos.
const FINISH_TIMEOUT: Duration = Duration::from_secs(300);

/// A keyframe at least every this many frames, so browsers can seek.
const KEYFRAME_INTERVAL: u32 = 60;

/// x264 constant-quality level: sharp boxes and text at a size that follows
/// the content rather than a fixed bitrate.
const X264_QUANTIZER: u32 = 23;

#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("frame is {got_width}x{got_height}, the encoder was created for {width}x{height}")]
    FrameSize {
        width: u32,
        height: u32,
        got_width: u32,
        got_height: u32,
    },
    #[error("cannot encode a {0}x{1} video: both sides must be at least 2 pixels")]
    InvalidSize(u32, u32),
    /// `finish` on an encoder that was given no frame: an MP4 needs at least one.
    #[error("no frame was pushed")]
    NoFrames,
    #[error("writing the video: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoder did not finish within {0:?}")]
    Timeout(Duration),
    #[error("gstreamer: {0}")]
    Gst(String),
}

impl From<gst::glib::BoolError> for EncodeError {
    fn from(e: gst::glib::BoolError) -> Self {
        EncodeError::Gst(e.to_string())
    }
}

/// Which H.264 encoder a pipeline uses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum H264 {
    X264,
    V4l2,
    Nvidia,
}

impl H264 {
    /// The best encoder installed, hardware first.
    fn preferred() -> H264 {
        let has = |name: &str| gst::ElementFactory::find(name).is_some();
        if has("nvv4l2h264enc") && has("nvvidconv") {
            H264::Nvidia
        } else if has("v4l2h264enc") {
            H264::V4l2
        } else {
            H264::X264
        }
    }
}

/// Writes one MP4 file. Dropping an encoder without [`Encoder::finish`]
/// stops the pipeline and removes the unfinished file.
pub struct Encoder {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    bus: gst::Bus,
    path: PathBuf,
    faststart_tmp: PathBuf,
    /// Size frames are pushed at.
    width: u32,
    height: u32,
    /// Layout of the frames handed to GStreamer (even sides, padded rows).
    layout: gst_video::VideoInfo,
    /// The last frame pushed, held until the next one gives its duration.
    pending: Option<gst::Buffer>,
    first_pts_ms: Option<u64>,
    last_pts_ms: u64,
    last_gap: Option<gst::ClockTime>,
    finished: bool,
}

impl Encoder {
    /// Create `path` and a pipeline that encodes `width`x`height` RGB frames
    /// into it. 4:2:0 needs even sides, so an odd last row or column is
    /// dropped.
    pub fn create(path: &Path, width: u32, height: u32) -> Result<Encoder, EncodeError> {
        if width < 2 || height < 2 {
            return Err(EncodeError::InvalidSize(width, height));
        }
        // Create the file ourselves: an unwritable place is an I/O error with
        // the OS's reason, not a GStreamer resource error.
        std::fs::File::create(path)?;
        init_gstreamer().map_err(|e| EncodeError::Gst(e.to_string()))?;

        let caps = gst_video::VideoCapsBuilder::new()
            .format(gst_video::VideoFormat::Rgb)
            .width((width & !1) as i32)
            .height((height & !1) as i32)
            // 0/1: variable frame rate, times come from each buffer.
            .framerate(gst::Fraction::new(0, 1))
            .pixel_aspect_ratio(gst::Fraction::new(1, 1))
            .build();
        let layout = gst_video::VideoInfo::from_caps(&caps)?;
        // mp4mux writes the media data to a side file while the index grows;
        // keep it beside the output, since /tmp is RAM on many small boards.
        let mut faststart_tmp = path.as_os_str().to_owned();
        faststart_tmp.push(".mdat.tmp");
        let faststart_tmp = PathBuf::from(faststart_tmp);

        let mut encoder = None;
        let mut tried = Vec::new();
        for kind in [H264::preferred(), H264::X264] {
            if tried.contains(&kind) {
                continue;
            }
            tried.push(kind);
            match build_pipeline(kind, &caps, &layout, path, &faststart_tmp) {
                Ok(built) => {
                    encoder = Some(built);
                    break;
                }
                Err(e) if kind != H264::X264 => {
                    tracing::warn!("{kind:?} H.264 encoder unusable, falling back to x264: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        let (pipeline, appsrc, bus) =
            encoder.ok_or_else(|| EncodeError::Gst("no H.264 encoder".into()))?;
        Ok(Encoder {
            pipeline,
            appsrc,
            bus,
            path: path.to_owned(),
            faststart_tmp,
            width,
            height,
            layout,
            pending: None,
            first_pts_ms: None,
            last_pts_ms: 0,
            last_gap: None,
            finished: false,
        })
    }

    /// Queue one frame shown from `pts_ms` (video time) until the next one.
    /// The output starts at the first frame pushed. Times must increase; a
    /// time that does not is moved 1 ms after the previous frame rather than
    /// failing the whole video. Blocks while the encoder is behind.
    pub fn push(&mut self, frame: &image::RgbImage, pts_ms: u64) -> Result<(), EncodeError> {
        if frame.dimensions() != (self.width, self.height) {
            return Err(EncodeError::FrameSize {
                width: self.width,
                height: self.height,
                got_width: frame.width(),
                got_height: frame.height(),
            });
        }
        self.check_bus()?;

        let first = *self.first_pts_ms.get_or_insert(pts_ms);
        let mut rel_ms = pts_ms.saturating_sub(first);
        if self.pending.is_some() && rel_ms <= self.last_pts_ms {
            tracing::debug!(pts_ms, "non-increasing frame time moved forward");
            rel_ms = self.last_pts_ms + 1;
        }
        let pts = gst::ClockTime::from_mseconds(rel_ms);

        let mut buffer = self.to_buffer(frame);
        buffer
            .get_mut()
            .expect("a new buffer is writable")
            .set_pts(pts);
        if let Some(mut prev) = self.pending.take() {
            let prev_pts = prev.pts().expect("set when queued");
            let gap = pts - prev_pts;
            prev.get_mut().expect("held only here").set_duration(gap);
            self.last_gap = Some(gap);
            self.send(prev)?;
        }
        self.pending = Some(buffer);
        self.last_pts_ms = rel_ms;
        Ok(())
    }

    /// Send the end of stream and wait (bounded) until the file is complete.
    pub fn finish(mut self) -> Result<(), EncodeError> {
        let Some(mut last) = self.pending.take() else {
            return Err(EncodeError::NoFrames);
        };
        // The last frame lasts as long as the one before it did.
        let duration = self.last_gap.unwrap_or(gst::ClockTime::from_mseconds(
            DEFAULT_FRAME.as_millis() as u64,
        ));
        last.get_mut()
            .expect("held only here")
            .set_duration(duration);
        self.send(last)?;
        self.appsrc
            .end_of_stream()
            .map_err(|e| self.bus_error().unwrap_or(EncodeError::Gst(e.to_string())))?;

        let msg = self.bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(FINISH_TIMEOUT.as_millis() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        );
        match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Eos(_)) => {}
            Some(gst::MessageView::Error(err)) => return Err(gst_error(err)),
            _ => return Err(EncodeError::Timeout(FINISH_TIMEOUT)),
        }
        self.pipeline
            .set_state(gst::State::Null)
            .map_err(|e| EncodeError::Gst(e.to_string()))?;
        self.finished = true;
        Ok(())
    }

    /// Copy `frame` into a GStreamer buffer laid out as the caps say: rows
    /// padded to 4 bytes, odd last row/column dropped.
    fn to_buffer(&self, frame: &image::RgbImage) -> gst::Buffer {
        let stride = self.layout.stride()[0] as usize;
        let row = 3 * self.layout.width() as usize;
        let src_row = 3 * frame.width() as usize;
        let mut data = vec![0u8; self.layout.size()];
        for (dst, src) in data
            .chunks_exact_mut(stride)
            .zip(frame.as_raw().chunks_exact(src_row))
        {
            dst[..row].copy_from_slice(&src[..row]);
        }
        gst::Buffer::from_mut_slice(data)
    }

    /// Queue a buffer once the appsrc has room: back-pressure on the caller,
    /// bounded memory, and an encoder failure ends the wait.
    fn send(&self, buffer: gst::Buffer) -> Result<(), EncodeError> {
        while self.appsrc.current_level_bytes() >= self.appsrc.max_bytes() {
            if let Some(msg) = self.bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(ROOM_POLL.as_millis() as u64),
                &[gst::MessageType::Error],
            ) && let gst::MessageView::Error(err) = msg.view()
            {
                return Err(gst_error(err));
            }
        }
        self.appsrc.push_buffer(buffer).map_err(|flow| {
            // A refused buffer means the pipeline failed; the bus says why.
            self.bus_error()
                .unwrap_or_else(|| EncodeError::Gst(format!("pushing a frame: {flow:?}")))
        })?;
        Ok(())
    }

    fn check_bus(&self) -> Result<(), EncodeError> {
        match self.bus_error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn bus_error(&self) -> Option<EncodeError> {
        let msg = self.bus.pop_filtered(&[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => Some(gst_error(err)),
            _ => None,
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(&self.faststart_tmp);
    }
}

/// Build and start the pipeline with the given encoder.
fn build_pipeline(
    kind: H264,
    caps: &gst::Caps,
    layout: &gst_video::VideoInfo,
    path: &Path,
    faststart_tmp: &Path,
) -> Result<(gst::Pipeline, gst_app::AppSrc, gst::Bus), EncodeError> {
    let pipeline = gst::Pipeline::new();
    let appsrc = gst_app::AppSrc::builder()
        .caps(caps)
        .format(gst::Format::Time)
        .is_live(false)
        // Not `block`: a push blocked inside appsrc never wakes if the
        // encoder fails. `send` waits for room itself, watching the bus.
        .block(false)
        .max_bytes(QUEUED_FRAMES * layout.size() as u64)
        .build();
    let make = |name: &str| gst::ElementFactory::make(name).build();
    let i420 = gst::ElementFactory::make("capsfilter")
        .property(
            "caps",
            gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .build(),
        )
        .build()?;
    let mut chain = vec![
        appsrc.clone().upcast::<gst::Element>(),
        make("videoconvert")?,
        i420,
    ];
    match kind {
        // Properties are set from strings through the builder, so a property
        // a plugin version lacks is an error here, not a panic.
        H264::X264 => {
            let x264 = gst::ElementFactory::make("x264enc")
                .property_from_str("speed-preset", "veryfast")
                // No lookahead or B-frames: little memory held in the encoder.
                .property_from_str("tune", "zerolatency")
                .property_from_str("pass", "qual")
                .property_from_str("quantizer", &X264_QUANTIZER.to_string())
                .property_from_str("key-int-max", &KEYFRAME_INTERVAL.to_string())
                .build()?;
            chain.push(x264);
            // Straight to the muxer, no h264parse: x264 already gives the
            // avc form MP4 stores, and h264parse re-derives durations from
            // the stream's timing info, which for variable-rate input turns
            // them into 1 ns, so the last frame got no time on screen.
            chain.push(h264_caps("high", None)?);
        }
        H264::V4l2 => {
            let controls = format!(
                "controls,h264_i_frame_period={KEYFRAME_INTERVAL},repeat_sequence_header=1"
            );
            let enc = gst::ElementFactory::make("v4l2h264enc")
                .property_from_str("extra-controls", &controls)
                .build()?;
            chain.push(enc);
            // The Pi's encoder only negotiates with a level in its caps.
            chain.push(h264_caps("high", Some("4"))?);
            // Its byte-stream output needs converting to the avc form.
            chain.push(make("h264parse")?);
        }
        H264::Nvidia => {
            // NVENC reads device (NVMM) memory: nvvidconv uploads the frames.
            chain.push(make("nvvidconv")?);
            let nvmm = gst::Caps::builder("video/x-raw")
                .features(["memory:NVMM"])
                .field("format", "I420")
                .build();
            chain.push(
                gst::ElementFactory::make("capsfilter")
                    .property("caps", nvmm)
                    .build()?,
            );
            let enc = gst::ElementFactory::make("nvv4l2h264enc")
                .property_from_str("iframeinterval", &KEYFRAME_INTERVAL.to_string())
                .build()?;
            chain.push(enc);
            chain.push(h264_caps("high", None)?);
            chain.push(make("h264parse")?);
        }
    }
    chain.push(
        gst::ElementFactory::make("mp4mux")
            .property("faststart", true)
            .property("faststart-file", faststart_tmp.to_string_lossy().as_ref())
            .build()?,
    );
    chain.push(
        gst::ElementFactory::make("filesink")
            .property("location", path.to_string_lossy().as_ref())
            .build()?,
    );

    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| EncodeError::Gst("pipeline has no bus".into()))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        let _ = pipeline.set_state(gst::State::Null);
        let why = bus
            .pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(err) => Some(gst_error(err).to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "state change refused".into());
        return Err(EncodeError::Gst(format!(
            "starting the {kind:?} encoder: {why}"
        )));
    }
    Ok((pipeline, appsrc, bus))
}

fn h264_caps(profile: &str, level: Option<&str>) -> Result<gst::Element, EncodeError> {
    let mut caps = gst::Caps::builder("video/x-h264").field("profile", profile);
    if let Some(level) = level {
        caps = caps.field("level", level);
    }
    Ok(gst::ElementFactory::make("capsfilter")
        .property("caps", caps.build())
        .build()?)
}

fn gst_error(err: &gst::message::Error) -> EncodeError {
    let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    let text = format!("{} ({source})", err.error().message());
    match err.error().kind::<gst::ResourceError>() {
        Some(_) => EncodeError::Io(std::io::Error::other(text)),
        None => EncodeError::Gst(text),
    }
}
