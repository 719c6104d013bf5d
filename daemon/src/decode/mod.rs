//! Video decoding: any file GStreamer can demux and decode, out as I420
//! frames.
//!
//! A [`Decoder`] owns one pipeline
//!
//! ```text
//! filesrc ! decodebin ─(video pad)→ videoconvert ! videoflip(auto) ! video/x-raw,format=I420 ! appsink
//! ```
//!
//! and hands out frames one at a time with [`Decoder::next_frame`]. A probe
//! in front of `videoconvert` times every frame and drops the frames a job
//! or a camera will not use before they are converted
//! ([`Decoder::skip_unused`], `skip.rs`). For a job's file a second probe,
//! on the decoder's input, drops the coded frames the job will not use and
//! no other frame needs before they are decoded (`disposable.rs`).
//! It sits between the sources (an upload saved to disk) and detection:
//! each [`DecodedFrame`] keeps the GStreamer buffer mapped and lends its
//! planes as an [`I420Frame`], so pixels reach the detector without a copy.
//! I420 is what software decoders output (`videoconvert` then has nothing
//! to do) and what the detector's letterbox scales before converting to
//! RGB; whole frames become RGB only for what draws on them or crops them
//! (faces, plates, the annotated video), in the consumer's thread.
//!
//! Memory stays bounded whatever the length of the video: the appsink queue
//! holds at most [`QUEUED_FRAMES`] frames and does not drop, so a slow consumer
//! stalls the decoder instead of letting frames pile up.
//!
//! Errors are typed so the HTTP edge can answer precisely: a file that is not a
//! video at all (unknown type, audio only, no decoder for its codec) is
//! [`DecodeError::NotVideo`] (415); a video that breaks while demuxing or
//! decoding is [`DecodeError::Corrupt`] (422), and one that ends well before
//! its declared duration is [`DecodeError::Truncated`] (also 422).
//!
//! Hardware decoders: `decodebin` picks the highest-ranked decoder for each
//! stream, so a board's hardware decoder is used when its plugin is installed
//! and ranks above `avdec_*` (`v4l2h264dec`/`v4l2slh265dec` on a Raspberry Pi,
//! `nvv4l2decoder` on a Jetson). Operators can reorder without a rebuild with
//! `GST_PLUGIN_FEATURE_RANK=v4l2h264dec:MAX` (or `:NONE` to keep one out).
//! Jetson decoders output `memory:NVMM` buffers, which `videoconvert` cannot
//! read, so such a pad is routed through `nvvidconv` first when it exists.
//! None of the hardware paths can be exercised on the x86 CI machine.

use std::cell::OnceCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use image::RgbImage;
use thiserror::Error;
use wayside_vision::frame::{Colour, FrameError, I420Frame, Matrix, Plane, RgbFrame};

use disposable::Bitstream;
pub use skip::{FrameTime, Tally};
use skip::{Ready, Skipper};

pub mod camera;
mod disposable;
mod skip;
#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;

/// Frames the appsink may hold before the decoder blocks: enough to overlap
/// decoding with detection, few enough that a 4K stream stays in tens of MB.
const QUEUED_FRAMES: u32 = 2;

/// How long `open` waits for the first frame. Prerolling only needs the
/// headers and one decoded frame, so this is generous.
const PREROLL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often preroll looks at the pipeline's state while no message comes.
const PREROLL_POLL: Duration = Duration::from_millis(100);

/// How long one appsink pull waits before the bus is checked for errors: an
/// upstream error pauses the streaming thread without sending EOS, so a
/// blocking pull would wait forever.
const PULL_SLICE: gst::ClockTime = gst::ClockTime::from_mseconds(100);

/// A stream that stops earlier than this before its declared duration is
/// reported as truncated (see [`DecodeError::Truncated`]).
const TRUNCATION_SLACK: Duration = Duration::from_secs(1);

/// The longest a probe holds a dropped frame of a file played as a camera
/// (`drop_frame`): a frame is due a frame or two after it is decoded, so
/// this bounds only a stream whose times jump, and how long stopping waits.
const MAX_HOLD: Duration = Duration::from_secs(1);

/// Name of the application message posted when decodebin has exposed all its
/// streams and none of them is video.
const NO_VIDEO_MESSAGE: &str = "wayside-no-video-stream";

#[derive(Debug, Error)]
pub enum DecodeError {
    /// Not something we can decode as video: unknown type, no video stream
    /// (audio only), or no decoder for its codec. HTTP 415.
    #[error("not a decodable video: {0}")]
    NotVideo(String),
    /// The container or the stream is broken. HTTP 422.
    #[error("corrupt video: {0}")]
    Corrupt(String),
    /// The stream ended at `ended_ms` although its container declares
    /// `duration_ms`: typically an upload cut short. Returned by `next_frame`
    /// in place of the end of stream, after the frames that could be decoded.
    /// HTTP 422.
    #[error("video ends at {ended_ms} ms but declares {duration_ms} ms: truncated file")]
    Truncated { ended_ms: u64, duration_ms: u64 },
    #[error("reading the video: {0}")]
    Io(#[from] std::io::Error),
    /// A camera sent no frame for this long.
    #[error("no frame for {0:?}")]
    Stalled(Duration),
    /// A GStreamer failure unrelated to the input (missing element, state
    /// change refused, timeout).
    #[error("gstreamer: {0}")]
    Gst(String),
}

impl From<gst::glib::BoolError> for DecodeError {
    fn from(e: gst::glib::BoolError) -> Self {
        DecodeError::Gst(e.to_string())
    }
}

/// What is known about the video after preroll. `width`/`height` are those of
/// the frames handed out (after any rotation).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// `None` when the container does not say (some streamed formats).
    pub duration_ms: Option<u64>,
    /// `None` for variable frame rate streams.
    pub fps: Option<f64>,
}

/// One decoded frame. Holds the GStreamer buffer mapped for reading, so the
/// decoder's I420 planes are borrowed, not copied; RGB is made only for what
/// needs whole-frame pixels (faces, plates, the annotated video).
pub struct DecodedFrame {
    buffer: gst::MappedBuffer<gst::buffer::Readable>,
    width: u32,
    height: u32,
    /// Offset and stride of the Y, U and V planes in `buffer`.
    planes: [(usize, usize); 3],
    colour: Colour,
    /// The frame as packed RGB, converted the first time it is asked for.
    rgb: OnceCell<Vec<u8>>,
    pts_ms: u64,
    ready_at: Instant,
}

impl DecodedFrame {
    /// Presentation time in ms from the first frame of the stream.
    pub fn pts_ms(&self) -> u64 {
        self.pts_ms
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// When the frame was ready for the consumer: decoded, or for a file
    /// played as a camera, due at the sink. The instant the skip rule was
    /// given for it ([`FrameTime::ready_at`]), so a camera that times its
    /// frames by it agrees with its rule.
    pub fn ready_at(&self) -> Instant {
        self.ready_at
    }

    /// The decoder's planes, as the detector's letterbox reads them.
    pub fn yuv(&self) -> I420Frame<'_> {
        yuv_view(
            &self.buffer,
            self.width,
            self.height,
            self.planes,
            self.colour,
        )
        .expect("layout checked when the frame was built")
    }

    /// The frame as packed RGB, converted on the first call (a 720p frame
    /// takes about a millisecond) and kept for the next.
    pub fn rgb(&self) -> RgbFrame<'_> {
        RgbFrame::new(
            self.width,
            self.height,
            3 * self.width as usize,
            self.cached(),
        )
        .expect("converted to width * height * 3 bytes")
    }

    /// A copy of the RGB pixels, to draw on while the frame is still used.
    pub fn rgb_image(&self) -> RgbImage {
        self.image(self.cached().to_vec())
    }

    /// The RGB pixels as an image of their own, without a copy when `rgb()`
    /// already converted them.
    pub fn into_rgb_image(mut self) -> RgbImage {
        let rgb = self.rgb.take().unwrap_or_else(|| self.converted());
        self.image(rgb)
    }

    fn cached(&self) -> &[u8] {
        self.rgb.get_or_init(|| self.converted())
    }

    fn image(&self, rgb: Vec<u8>) -> RgbImage {
        RgbImage::from_raw(self.width, self.height, rgb)
            .expect("converted to width * height * 3 bytes")
    }

    fn converted(&self) -> Vec<u8> {
        self.yuv()
            .to_rgb()
            .expect("planes checked when the frame was built")
    }
}

/// The I420 view of `buffer` at the given plane offsets and strides.
fn yuv_view(
    buffer: &[u8],
    width: u32,
    height: u32,
    planes: [(usize, usize); 3],
    colour: Colour,
) -> Result<I420Frame<'_>, FrameError> {
    let planes = planes.map(|(offset, stride)| Plane {
        data: buffer.get(offset..).unwrap_or(&[]),
        stride,
    });
    I420Frame::new(width, height, planes, colour)
}

/// How the stream's colorimetry maps YUV to RGB. Caps without colorimetry
/// get GStreamer's default by frame size (BT.709 from 720 lines up), as
/// `videoconvert` would use.
fn colour(info: &gst_video::VideoInfo) -> Colour {
    use gst_video::VideoColorMatrix as M;
    let c = info.colorimetry();
    let matrix = match c.matrix() {
        M::Bt601 | M::Fcc => Matrix::Bt601,
        M::Bt2020 => Matrix::Bt2020,
        M::Bt709 | M::Smpte240m => Matrix::Bt709,
        _ if info.height() >= 720 => Matrix::Bt709,
        _ => Matrix::Bt601,
    };
    Colour {
        matrix,
        full_range: c.range() == gst_video::VideoColorRange::Range0_255,
    }
}

/// Frame layout from the negotiated caps, recomputed only when caps change
/// (a stream may change resolution midway).
struct Layout {
    caps: gst::Caps,
    info: gst_video::VideoInfo,
}

/// Owns a decoding pipeline; dropping it stops the pipeline.
pub struct Decoder {
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
    info: VideoInfo,
    layout: Option<Layout>,
    finished: bool,
    /// How frames reach the appsink; a live source only produces them once
    /// playing.
    pacing: Pacing,
    /// Cameras: no frame for this long is an error, not a wait (a camera
    /// whose network went away often posts nothing at all).
    stall_timeout: Option<Duration>,
    /// Times and counts every decoded frame, and drops those the
    /// consumer's rule turns down before conversion: the stream's clock.
    skipper: Arc<Skipper>,
}

/// How frames are paced from source to appsink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pacing {
    /// A file processed as a job: as fast as the consumer takes frames,
    /// none dropped.
    AsFastAsRead,
    /// A file played as a camera: at its own frame rate, old frames dropped
    /// when analysis falls behind.
    RealTime,
    /// A live source (RTSP, V4L2, test source): frames come at the source's
    /// rate; old frames dropped when analysis falls behind.
    Live,
}

/// The source half of a pipeline: elements linked in order, the last of
/// which (decodebin or uridecodebin) exposes decoded pads.
struct Front {
    elements: Vec<gst::Element>,
    pacing: Pacing,
}

/// Initialise GStreamer once per process; later calls are free.
pub(crate) fn init_gstreamer() -> Result<(), gst::glib::Error> {
    static INIT: Once = Once::new();
    let mut result = Ok(());
    INIT.call_once(|| result = gst::init());
    result
}

impl Decoder {
    /// Open a local file and preroll it, so [`Decoder::info`] is known before
    /// the first frame is taken. A libav software decoder gets at most
    /// `threads` threads (0: libav's choice).
    pub fn open(path: &Path, threads: u32) -> Result<Decoder, DecodeError> {
        // Open it ourselves first: a missing or unreadable file is an I/O
        // error with the OS's reason, not a GStreamer resource error.
        std::fs::File::open(path)?;
        init_gstreamer().map_err(|e| DecodeError::Gst(e.to_string()))?;
        let src = gst::ElementFactory::make("filesrc")
            .property("location", path.to_string_lossy().as_ref())
            .build()?;
        let decodebin = gst::ElementFactory::make("decodebin").build()?;
        Decoder::assemble(
            Front {
                elements: vec![src, decodebin],
                pacing: Pacing::AsFastAsRead,
            },
            PREROLL_TIMEOUT,
            threads,
        )
    }

    /// Everything after the source, shared by files and cameras: the front's
    /// last element (a decodebin or uridecodebin) exposes decoded pads, the
    /// video one is converted to upright RGB for the appsink. A libav
    /// software decoder gets at most `threads` threads (0: libav's choice).
    fn assemble(
        front: Front,
        preroll_timeout: Duration,
        threads: u32,
    ) -> Result<Decoder, DecodeError> {
        let pipeline = gst::Pipeline::new();
        let decodebin = front
            .elements
            .last()
            .cloned()
            .ok_or_else(|| DecodeError::Gst("no source elements".into()))?;
        let convert = gst::ElementFactory::make("videoconvert").build()?;
        // Rotation-tagged files (phones) come out upright; when there is no
        // tag videoflip is a passthrough and costs nothing.
        let flip = gst::ElementFactory::make("videoflip")
            .property_from_str("video-direction", "auto")
            .build()?;
        let appsink = gst_app::AppSink::builder()
            .caps(
                &gst_video::VideoCapsBuilder::new()
                    .format(gst_video::VideoFormat::I420)
                    .build(),
            )
            // Files decode as fast as the consumer takes frames; a file
            // played as a camera keeps to its frame rate.
            .sync(front.pacing == Pacing::RealTime)
            .max_buffers(QUEUED_FRAMES)
            // A camera does not wait for us: when analysis falls behind, the
            // oldest frame goes, so what is analysed stays current.
            .drop(front.pacing != Pacing::AsFastAsRead)
            // Otherwise the sink keeps a reference to the last frame.
            .enable_last_sample(false)
            .build();

        let skipper = Arc::new(Skipper::default());
        watch_decoders(&pipeline, threads, skipper.clone(), front.pacing);
        pipeline.add_many(front.elements.iter())?;
        pipeline.add_many([&convert, &flip, appsink.upcast_ref()])?;
        if front.elements.len() > 1 {
            gst::Element::link_many(front.elements.iter())?;
        }
        gst::Element::link_many([&convert, &flip, appsink.upcast_ref()])?;
        skip_before(&convert, front.pacing, skipper.clone())?;

        // Only video is decoded: other streams stop at their encoded caps and
        // stay unlinked, which saves decoding audio we would throw away.
        decodebin.connect("autoplug-continue", false, |args| {
            let caps = args.get(2)?.get::<gst::Caps>().ok()?;
            let name = caps.structure(0).map(|s| s.name().as_str()).unwrap_or("");
            let other_media = name.starts_with("audio/")
                || name.starts_with("text/")
                || name.starts_with("subpicture/")
                || name.starts_with("subtitle/")
                || name.starts_with("closedcaption/");
            Some((!other_media).to_value())
        });

        let video_linked = Arc::new(AtomicBool::new(false));
        {
            let video_linked = video_linked.clone();
            let convert = convert.clone();
            decodebin.connect_pad_added(move |dbin, pad| {
                if video_linked.load(Ordering::SeqCst) || !is_raw_video(pad) {
                    return;
                }
                match link_video_pad(dbin, pad, &convert) {
                    Ok(()) => video_linked.store(true, Ordering::SeqCst),
                    Err(e) => tracing::warn!("cannot link decoded video: {e}"),
                }
            });
        }
        {
            let video_linked = video_linked.clone();
            decodebin.connect_no_more_pads(move |dbin| {
                if !video_linked.load(Ordering::SeqCst) {
                    let msg = gst::message::Application::builder(gst::Structure::new_empty(
                        NO_VIDEO_MESSAGE,
                    ))
                    .src(dbin)
                    .build();
                    let _ = dbin.post_message(msg);
                }
            });
        }

        let bus = pipeline
            .bus()
            .ok_or_else(|| DecodeError::Gst("pipeline has no bus".into()))?;
        let mut decoder = Decoder {
            pipeline,
            appsink,
            bus,
            info: VideoInfo {
                width: 0,
                height: 0,
                duration_ms: None,
                fps: None,
            },
            layout: None,
            finished: false,
            pacing: front.pacing,
            stall_timeout: None,
            skipper,
        };
        decoder.preroll(&video_linked, preroll_timeout)?;
        Ok(decoder)
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    /// From now on frames for which `rule` answers false are dropped before
    /// conversion, and `next_frame` skips them. `rule` is asked about every
    /// frame, those already decoded included; for a file it must leave its
    /// state unchanged when it answers false (skip.rs says why). Frames
    /// that no other frame needs are judged by a copy of `rule` before they
    /// are decoded, and those it turns down are not decoded. A file played
    /// as a camera keeps its pace whatever the rule drops.
    pub fn skip_unused(&self, rule: impl FnMut(FrameTime) -> bool + Clone + Send + 'static) {
        self.skip_unused_with(rule.clone(), rule);
    }

    /// As [`Decoder::skip_unused`], with the rule that judges frames before
    /// they are decoded given apart: for a `rule` whose state is shared
    /// with the consumer, `coded` asks it without changing it.
    pub fn skip_unused_with(
        &self,
        rule: impl FnMut(FrameTime) -> bool + Send + 'static,
        coded: impl FnMut(FrameTime) -> bool + Send + 'static,
    ) {
        self.skipper.set_rule(Box::new(rule), Box::new(coded));
    }

    /// Time (ms) of the last frame decoded so far, skipped ones included.
    pub fn last_decoded_ms(&self) -> u64 {
        self.skipper.last_start().mseconds()
    }

    /// Frames decoded so far, and how many of them went on to conversion.
    pub fn tally(&self) -> Tally {
        self.skipper.tally()
    }

    /// The next frame in presentation order; `None` at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<DecodedFrame>, DecodeError> {
        if self.finished {
            return Ok(None);
        }
        let waited_since = Instant::now();
        loop {
            self.check_bus()?;
            if let Some(limit) = self.stall_timeout {
                // A camera whose frames the rule turns down is not stalled.
                let last = self.skipper.last_frame_at().unwrap_or(waited_since);
                if last.max(waited_since).elapsed() > limit {
                    return Err(DecodeError::Stalled(limit));
                }
            }
            if let Some(sample) = self.appsink.try_pull_sample(PULL_SLICE) {
                return self.frame_from_sample(sample).map(Some);
            }
            if self.appsink.is_eos() {
                // An error may have been posted just before EOS reached us.
                self.check_bus()?;
                self.finished = true;
                self.check_complete()?;
                return Ok(None);
            }
        }
    }

    /// PAUSED makes the sink wait for its first frame; ASYNC_DONE then means
    /// the caps are negotiated and the duration can be asked for. A live
    /// source only produces frames when playing, so it is started right
    /// away and its first frame completes the same state change.
    fn preroll(&mut self, video_linked: &AtomicBool, timeout: Duration) -> Result<(), DecodeError> {
        let live = self.pacing == Pacing::Live;
        let target = if live {
            gst::State::Playing
        } else {
            gst::State::Paused
        };
        if self.pipeline.set_state(target).is_err() {
            // The bus usually says why (e.g. typefind failed).
            self.check_bus()?;
            return Err(DecodeError::Gst(format!(
                "pipeline refused to go to {target:?}"
            )));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && live {
                return Err(DecodeError::Stalled(timeout));
            }
            if left.is_zero() {
                // A local file that yields no frame in this time is broken
                // (seen with MP4s cut short before their index), not busy.
                return Err(DecodeError::Corrupt(
                    "no frame could be decoded (timed out waiting for the first frame)".into(),
                ));
            }
            let slice = left.min(PREROLL_POLL);
            let Some(msg) = self.bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(slice.as_millis() as u64),
                &[
                    gst::MessageType::Error,
                    gst::MessageType::AsyncDone,
                    gst::MessageType::Application,
                    gst::MessageType::Eos,
                ],
            ) else {
                // The error that failed the state change does not always
                // reach the pipeline's bus (seen with a truncated MP4 while
                // other pipelines ran): ask the pipeline itself.
                if self.pipeline.state(gst::ClockTime::ZERO).0.is_err() {
                    self.check_bus()?;
                    return Err(DecodeError::Corrupt(
                        "the file could not be read as a video (no playable stream)".into(),
                    ));
                }
                continue;
            };
            match msg.view() {
                gst::MessageView::AsyncDone(_) => break,
                gst::MessageView::Eos(_) => {
                    return Err(DecodeError::Corrupt(
                        "the stream ended before its first frame".into(),
                    ));
                }
                gst::MessageView::Application(app)
                    if app
                        .structure()
                        .is_some_and(|s| s.name() == NO_VIDEO_MESSAGE) =>
                {
                    return Err(DecodeError::NotVideo("no video stream".into()));
                }
                gst::MessageView::Error(err) => {
                    // An audio-only file fails with "not-linked" from the
                    // demuxer, which would otherwise look like corruption.
                    if !video_linked.load(Ordering::SeqCst) && is_not_linked(err) {
                        return Err(DecodeError::NotVideo("no video stream".into()));
                    }
                    return Err(classify_error(err));
                }
                _ => {}
            }
        }
        if !video_linked.load(Ordering::SeqCst) {
            return Err(DecodeError::NotVideo("no video stream".into()));
        }
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| DecodeError::Gst(e.to_string()))?;

        self.info.duration_ms = self
            .pipeline
            .query_duration::<gst::ClockTime>()
            .map(|d| d.mseconds())
            .filter(|&d| d > 0);
        // A file with a header but no decodable frame reaches EOS at preroll
        // and has no caps on the sink; its size then stays 0x0.
        if let Some(caps) = self
            .appsink
            .static_pad("sink")
            .and_then(|p| p.current_caps())
        {
            let vinfo = gst_video::VideoInfo::from_caps(&caps)?;
            self.info.width = vinfo.width();
            self.info.height = vinfo.height();
            let fps = vinfo.fps();
            self.info.fps = (fps.numer() > 0 && fps.denom() > 0)
                .then(|| fps.numer() as f64 / fps.denom() as f64);
        }
        Ok(())
    }

    /// Surface the first error waiting on the bus, without blocking.
    fn check_bus(&self) -> Result<(), DecodeError> {
        match self.bus.pop_filtered(&[gst::MessageType::Error]) {
            Some(msg) => match msg.view() {
                gst::MessageView::Error(err) => Err(classify_error(err)),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Containers that index up front (MP4 with moov first) declare the full
    /// duration, then simply reach EOS where the bytes run out: GStreamer
    /// posts no error, so a cut-short upload is recognised here.
    fn check_complete(&self) -> Result<(), DecodeError> {
        let Some(duration_ms) = self.info.duration_ms.filter(|_| self.tally().decoded > 0) else {
            return Ok(());
        };
        let ended_ms = self.skipper.last_end().mseconds();
        // Audio may outlast video a little; allow a second or a tenth.
        let slack = TRUNCATION_SLACK.as_millis().max(duration_ms as u128 / 10) as u64;
        if ended_ms + slack < duration_ms {
            return Err(DecodeError::Truncated {
                ended_ms,
                duration_ms,
            });
        }
        Ok(())
    }

    fn frame_from_sample(&mut self, sample: gst::Sample) -> Result<DecodedFrame, DecodeError> {
        let caps = sample
            .caps_owned()
            .ok_or_else(|| DecodeError::Gst("sample without caps".into()))?;
        if self.layout.as_ref().is_none_or(|l| l.caps != caps) {
            let info = gst_video::VideoInfo::from_caps(&caps)?;
            self.layout = Some(Layout { caps, info });
        }
        let info = &self.layout.as_ref().expect("set above").info;
        let buffer = sample
            .buffer_owned()
            .ok_or_else(|| DecodeError::Gst("sample without buffer".into()))?;

        // A VideoMeta, when present, overrides the default layout.
        let meta = buffer.meta::<gst_video::VideoMeta>();
        let (strides, offsets) = match &meta {
            Some(meta) => (meta.stride(), meta.offset()),
            None => (info.stride(), info.offset()),
        };
        let mut planes = [(0, 0); 3];
        for (i, plane) in planes.iter_mut().enumerate() {
            let (Some(&stride), Some(&offset)) = (strides.get(i), offsets.get(i)) else {
                return Err(DecodeError::Gst(format!("decoded buffer has no plane {i}")));
            };
            let stride = usize::try_from(stride)
                .map_err(|_| DecodeError::Gst(format!("negative stride {stride}")))?;
            *plane = (offset, stride);
        }

        // Lost only if more frames were converted than the sink can hold.
        let (pts, ready_at) = self
            .skipper
            .take(buffer.pts())
            .unwrap_or_else(|| (self.skipper.last_start(), Instant::now()));
        let pts_ms = pts.mseconds();

        let buffer = buffer
            .into_mapped_buffer_readable()
            .map_err(|_| DecodeError::Gst("cannot map decoded buffer".into()))?;
        let (width, height, colour) = (info.width(), info.height(), colour(info));
        // Check the layout once here so `yuv()` and `rgb()` cannot fail later.
        yuv_view(&buffer, width, height, planes, colour)
            .map_err(|e| DecodeError::Gst(format!("decoded buffer: {e}")))?;
        Ok(DecodedFrame {
            buffer,
            width,
            height,
            planes,
            colour,
            rgb: OnceCell::new(),
            pts_ms,
            ready_at,
        })
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A probe on `convert`'s input that drops the frames the skipper's rule
/// turns down.
fn skip_before(
    convert: &gst::Element,
    pacing: Pacing,
    skipper: Arc<Skipper>,
) -> Result<(), DecodeError> {
    let sink = convert
        .static_pad("sink")
        .ok_or_else(|| DecodeError::Gst("videoconvert has no sink pad".into()))?;
    let probe = skipper;
    sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let held = sink_hold(pad, buffer.pts(), pacing);
        let length = buffer
            .duration()
            .or_else(|| frame_interval(pad))
            .unwrap_or(skip::UNKNOWN_FRAME);
        if probe.admit(buffer.pts(), length, held) {
            gst::PadProbeReturn::Ok
        } else {
            drop_frame(held)
        }
    });
    Ok(())
}

/// A probe on a decoder's input that drops the coded frames no other frame
/// needs and the skipper's rule turns down (`disposable.rs`).
fn skip_before_decoding(decoder: &gst::Element, skipper: Arc<Skipper>, pacing: Pacing) {
    let Some(sink) = decoder.static_pad("sink") else {
        return;
    };
    // The framing is read from the caps once per caps.
    let framing = std::sync::Mutex::new(None::<(gst::Caps, Option<Bitstream>)>);
    sink.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(buffer) = info.buffer() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(caps) = pad.current_caps() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut framing = framing.lock().unwrap_or_else(|e| e.into_inner());
        if framing
            .as_ref()
            .is_none_or(|(known, _)| known.as_ptr() != caps.as_ptr())
        {
            let bitstream = Bitstream::of(&caps);
            *framing = Some((caps, bitstream));
        }
        let disposable = framing
            .as_mut()
            .and_then(|(_, b)| b.as_mut())
            .is_some_and(|b| {
                buffer
                    .map_readable()
                    .is_ok_and(|au| b.is_disposable(au.as_slice()))
            });
        let length = buffer
            .duration()
            .or_else(|| frame_interval(pad))
            .unwrap_or(skip::UNKNOWN_FRAME);
        let held = sink_hold(pad, buffer.pts(), pacing);
        let ready = match pacing {
            Pacing::Live => Ready::WhenDecoded,
            Pacing::AsFastAsRead | Pacing::RealTime => Ready::After(held),
        };
        if skipper.admit_coded(buffer.pts(), length, disposable, ready) {
            gst::PadProbeReturn::Ok
        } else {
            drop_frame(held)
        }
    });
}

/// How long the sink will hold a frame at `pts`, seen on `pad`, before it
/// hands the frame over: a file played as a camera keeps to its pace, any
/// other source's frames are handed over as soon as they are converted.
fn sink_hold(pad: &gst::Pad, pts: Option<gst::ClockTime>, pacing: Pacing) -> Duration {
    match pacing {
        Pacing::RealTime => {
            held_back(pad, pts).map_or(Duration::ZERO, |h| Duration::from_nanos(h.nseconds()))
        }
        Pacing::AsFastAsRead | Pacing::Live => Duration::ZERO,
    }
}

/// Drops a frame a probe's rule turned down, after holding it for as long
/// as the sink would have (`held`). The sink paces the decoding of a file
/// played as a camera, by the frames that reach it: without the hold, a
/// decoder whose frames are all dropped would race seconds ahead of the
/// stream's time, and the next frame kept would wait that long at the sink.
fn drop_frame(held: Duration) -> gst::PadProbeReturn {
    if !held.is_zero() {
        std::thread::sleep(held.min(MAX_HOLD));
    }
    // `Handled`, not `Drop`: the binding has taken the buffer and frees it
    // itself, and GStreamer 1.22 would then unreference a null pointer.
    gst::PadProbeReturn::Handled
}

/// One frame's time at the frame rate the caps on `pad` declare; `None`
/// for a variable or unknown rate (0/1).
fn frame_interval(pad: &gst::Pad) -> Option<gst::ClockTime> {
    let caps = pad.current_caps()?;
    let rate = caps.structure(0)?.get::<gst::Fraction>("framerate").ok()?;
    let (n, d) = (
        u64::try_from(rate.numer()).ok()?,
        u64::try_from(rate.denom()).ok()?,
    );
    (n > 0 && d > 0).then(|| gst::ClockTime::from_nseconds(1_000_000_000 * d / n))
}

/// How long a sink that keeps to the clock will hold a frame at `pts`
/// (decoded on `pad`) before handing it over: the frame's running time on
/// the pipeline's clock, less the clock's time now. `None` when the
/// pipeline has no clock yet (before it plays).
fn held_back(pad: &gst::Pad, pts: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    let segment = pad.sticky_event::<gst::event::Segment>(0)?;
    let running = segment
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(pts?)?;
    let element = pad.parent_element()?;
    let now = element.clock()?.time();
    Some((element.base_time()? + running).saturating_sub(now))
}

fn is_raw_video(pad: &gst::Pad) -> bool {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    caps.structure(0)
        .is_some_and(|s| s.name().as_str() == "video/x-raw")
}

/// Link a decoded video pad to `convert`, through `nvvidconv` when the
/// decoder hands out NVMM (Jetson device) memory.
fn link_video_pad(
    dbin: &gst::Element,
    pad: &gst::Pad,
    convert: &gst::Element,
) -> Result<(), DecodeError> {
    let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
    let nvmm = caps.features(0).is_some_and(|f| f.contains("memory:NVMM"));
    let sink = convert
        .static_pad("sink")
        .ok_or_else(|| DecodeError::Gst("videoconvert has no sink pad".into()))?;
    if nvmm {
        let nvconv = gst::ElementFactory::make("nvvidconv").build()?;
        let pipeline = dbin
            .parent()
            .and_downcast::<gst::Bin>()
            .ok_or_else(|| DecodeError::Gst("decodebin outside a bin".into()))?;
        pipeline.add(&nvconv)?;
        nvconv.link(convert)?;
        nvconv.sync_state_with_parent()?;
        let nv_sink = nvconv
            .static_pad("sink")
            .ok_or_else(|| DecodeError::Gst("nvvidconv has no sink pad".into()))?;
        pad.link(&nv_sink)
            .map_err(|e| DecodeError::Gst(format!("linking NVMM video: {e:?}")))?;
    } else {
        pad.link(&sink)
            .map_err(|e| DecodeError::Gst(format!("linking video: {e:?}")))?;
    }
    Ok(())
}

/// Decodebin makes the decoder once it knows the codec, so it is set up as
/// it is added. libav's default for a file is frame threading on every
/// core, each thread holding frames of its own: at 720p 7 MiB more than one
/// thread for the same speed when detection keeps the cores busy, at 4K 75
/// MiB (docs/BENCHMARKS.md, "One decoding thread per stream"), so a libav
/// decoder gets at most `threads` (0: libav's choice). The decoder's input
/// is judged before decoding.
fn watch_decoders(pipeline: &gst::Pipeline, threads: u32, skipper: Arc<Skipper>, pacing: Pacing) {
    let threads = i32::try_from(threads).unwrap_or(i32::MAX);
    pipeline.connect_deep_element_added(move |_, _, element| {
        let Some(factory) = element.factory() else {
            return;
        };
        // A video decoder, not a bin that decodes (uridecodebin holds a
        // decodebin, whose input is still the container or RTP).
        let klass = factory.klass();
        if !klass.contains("Decoder") || !(klass.contains("Video") || klass.contains("Image")) {
            return;
        }
        let libav = factory.name().starts_with("avdec_");
        if threads > 0 && libav && element.has_property("max-threads") {
            element.set_property("max-threads", threads);
        }
        // Decoding straight into GStreamer's buffers saves nothing for a
        // file: a frame libav still references is not writable when the
        // base class finishes it, so each one is copied into a fresh block
        // there (318 k page faults on the 720p clip instead of 137 k).
        // Without it, libav copies each frame into a buffer of a recycled
        // pool instead. Cameras keep it: for a `file:` camera, off saved
        // 5 % of the CPU and cost 4 MiB (docs/BENCHMARKS.md).
        if pacing == Pacing::AsFastAsRead && libav && element.has_property("direct-rendering") {
            element.set_property("direct-rendering", false);
        }
        skip_before_decoding(element, skipper.clone(), pacing);
    });
}

fn is_not_linked(err: &gst::message::Error) -> bool {
    err.debug()
        .is_some_and(|d| d.as_str().contains("not-linked"))
}

/// Map a bus error to what it means for the caller.
fn classify_error(err: &gst::message::Error) -> DecodeError {
    let e = err.error();
    let source = err.src().map(|s| s.name().to_string()).unwrap_or_default();
    let text = format!("{} ({source})", e.message());
    if let Some(kind) = e.kind::<gst::StreamError>() {
        return match kind {
            // "Could not determine type of stream", "Stream contains no data".
            gst::StreamError::TypeNotFound
            | gst::StreamError::WrongType
            | gst::StreamError::CodecNotFound => DecodeError::NotVideo(text),
            gst::StreamError::Decode
            | gst::StreamError::Demux
            | gst::StreamError::Format
            | gst::StreamError::Failed => DecodeError::Corrupt(text),
            _ => DecodeError::Gst(text),
        };
    }
    if let Some(kind) = e.kind::<gst::CoreError>() {
        // decodebin's "missing a plug-in": a codec we cannot decode.
        if kind == gst::CoreError::MissingPlugin {
            return DecodeError::NotVideo(text);
        }
    }
    if let Some(kind) = e.kind::<gst::ResourceError>() {
        let io_kind = match kind {
            gst::ResourceError::NotFound => std::io::ErrorKind::NotFound,
            _ => std::io::ErrorKind::Other,
        };
        return DecodeError::Io(std::io::Error::new(io_kind, text));
    }
    DecodeError::Gst(text)
}
