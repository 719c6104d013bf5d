//! Camera sources: where a `[[camera]]`'s frames come from, written in the
//! config as one string, and the GStreamer elements that read it. The rest
//! of the pipeline (decodebin's video pad → RGB appsink) is the file
//! decoder's, so a camera frame is the same [`DecodedFrame`](super::DecodedFrame)
//! a job gets.
//!
//! | `source` | elements | pacing |
//! | --- | --- | --- |
//! | `rtsp://[user:pass@]host[:port]/path` | `uridecodebin` (rtspsrc inside) | live |
//! | `v4l2:/dev/videoN` | `v4l2src ! decodebin` (raw or MJPEG cameras) | live |
//! | `file:/path/clip.mp4` | `filesrc ! decodebin`, replayed at its end | its own frame rate |
//! | `test:` or `test:PATTERN` | `videotestsrc is-live=true ! 640x480@15 ! decodebin` | live |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::{DecodeError, Decoder, Front, Pacing, init_gstreamer};

/// How long a camera may take to deliver its first frame: an RTSP camera
/// answers in a second or two, a dead host is found by the connect
/// timeout well before this.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Jitter buffer of an RTSP stream: short, as counting wants recent frames
/// and the network between a box and its camera is a cable.
const RTSP_LATENCY_MS: u32 = 200;

/// `videotestsrc` patterns a `test:` source may name (the useful subset).
const TEST_PATTERNS: &[&str] = &[
    "smpte", "snow", "black", "white", "ball", "gradient", "pinwheel", "spokes", "colors",
];

/// A camera's source, parsed from its config string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSource {
    Rtsp(String),
    V4l2(PathBuf),
    /// A clip played in a loop, as if it were a camera.
    File(PathBuf),
    /// `videotestsrc` with a pattern: a camera with no camera.
    Test(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(String);

impl FromStr for CameraSource {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, SourceError> {
        let bad = |why: &str| Err(SourceError(format!("{s:?}: {why}")));
        if s.starts_with("rtsp://") || s.starts_with("rtsps://") {
            let rest = s.split_once("://").map_or("", |(_, r)| r);
            let authority = rest.split('/').next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or("");
            if host.is_empty() || host.starts_with(':') {
                return bad("an RTSP URL needs a host: rtsp://host[:port]/path");
            }
            if s.chars().any(char::is_whitespace) {
                return bad("an RTSP URL cannot contain spaces");
            }
            return Ok(CameraSource::Rtsp(s.to_string()));
        }
        if let Some(dev) = s.strip_prefix("v4l2:") {
            if !dev.starts_with("/dev/") {
                return bad("a V4L2 source is v4l2:/dev/videoN");
            }
            return Ok(CameraSource::V4l2(dev.into()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            // Also accept the URI form file:///path.
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return bad("a file source is file:/path/to/clip");
            }
            return Ok(CameraSource::File(path.into()));
        }
        if let Some(pattern) = s.strip_prefix("test:") {
            let pattern = if pattern.is_empty() { "smpte" } else { pattern };
            if !TEST_PATTERNS.contains(&pattern) {
                return bad(&format!(
                    "unknown test pattern; one of {}",
                    TEST_PATTERNS.join(", ")
                ));
            }
            return Ok(CameraSource::Test(pattern.into()));
        }
        bad("expected rtsp://…, v4l2:/dev/videoN, file:/path or test:[pattern]")
    }
}

/// For logs and `/healthz`: an RTSP URL's password is never shown.
impl fmt::Display for CameraSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraSource::Rtsp(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("rtsp", url));
                match rest.split_once('@') {
                    Some((userinfo, host)) if !userinfo.contains('/') => {
                        let user = userinfo.split(':').next().unwrap_or("");
                        write!(f, "{scheme}://{user}:***@{host}")
                    }
                    _ => f.write_str(url),
                }
            }
            CameraSource::V4l2(dev) => write!(f, "v4l2:{}", dev.display()),
            CameraSource::File(path) => write!(f, "file:{}", path.display()),
            CameraSource::Test(pattern) => write!(f, "test:{pattern}"),
        }
    }
}

impl CameraSource {
    /// A file ends and starts again; every other source ending is a fault.
    pub fn loops(&self) -> bool {
        matches!(self, CameraSource::File(_))
    }
}

impl Decoder {
    /// Open a camera and wait for its first frame. Afterwards `next_frame`
    /// fails with [`DecodeError::Stalled`] when no frame comes for `stall`.
    /// `threads`: see [`Decoder::open`].
    pub fn open_camera(
        source: &CameraSource,
        stall: Duration,
        threads: u32,
    ) -> Result<Decoder, DecodeError> {
        init_gstreamer().map_err(|e| DecodeError::Gst(e.to_string()))?;
        let make = |name: &str| gst::ElementFactory::make(name).build();
        let front = match source {
            CameraSource::Rtsp(url) => {
                let uridecodebin = gst::ElementFactory::make("uridecodebin")
                    .property("uri", url.as_str())
                    .build()?;
                uridecodebin.connect("source-setup", false, |args| {
                    let src = args.get(1)?.get::<gst::Element>().ok()?;
                    if src.has_property("latency") {
                        src.set_property("latency", RTSP_LATENCY_MS);
                    }
                    None
                });
                Front {
                    elements: vec![uridecodebin],
                    pacing: Pacing::Live,
                }
            }
            CameraSource::V4l2(dev) => {
                // Checked here so a missing device is an I/O error naming it.
                std::fs::metadata(dev)?;
                let src = gst::ElementFactory::make("v4l2src")
                    .property("device", dev.to_string_lossy().as_ref())
                    .build()?;
                Front {
                    elements: vec![src, make("decodebin")?],
                    pacing: Pacing::Live,
                }
            }
            CameraSource::File(path) => {
                std::fs::File::open(path)?;
                let src = gst::ElementFactory::make("filesrc")
                    .property("location", path.to_string_lossy().as_ref())
                    .build()?;
                Front {
                    elements: vec![src, make("decodebin")?],
                    pacing: Pacing::RealTime,
                }
            }
            CameraSource::Test(pattern) => {
                let src = gst::ElementFactory::make("videotestsrc")
                    .property("is-live", true)
                    .property_from_str("pattern", pattern)
                    .build()?;
                let caps = gst::ElementFactory::make("capsfilter")
                    .property(
                        "caps",
                        gst::Caps::builder("video/x-raw")
                            .field("width", 640i32)
                            .field("height", 480i32)
                            .field("framerate", gst::Fraction::new(15, 1))
                            .build(),
                    )
                    .build()?;
                Front {
                    elements: vec![src, caps, make("decodebin")?],
                    pacing: Pacing::Live,
                }
            }
        };
        let mut decoder = Decoder::assemble(front, OPEN_TIMEOUT, threads)?;
        decoder.stall_timeout = Some(stall);
        Ok(decoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_hide_passwords() {
        let s: CameraSource = "rtsp://admin:secret@10.0.0.5:554/stream1".parse().unwrap();
        assert_eq!(s.to_string(), "rtsp://admin:***@10.0.0.5:554/stream1");
        assert!(!s.loops());
        let s: CameraSource = "file:///srv/clip.mp4".parse().unwrap();
        assert_eq!(s, CameraSource::File("/srv/clip.mp4".into()));
        assert!(s.loops());
        assert_eq!(
            "v4l2:/dev/video0".parse::<CameraSource>().unwrap(),
            CameraSource::V4l2("/dev/video0".into())
        );
        assert_eq!(
            "test:".parse::<CameraSource>().unwrap(),
            CameraSource::Test("smpte".into())
        );
        for bad in [
            "rtsp://",
            "rtsp:///path",
            "http://cam/",
            "v4l2:video0",
            "test:nope",
            "file:",
        ] {
            assert!(bad.parse::<CameraSource>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn test_source_gives_frames_and_a_dead_rtsp_server_is_an_error() {
        let source: CameraSource = "test:ball".parse().unwrap();
        let mut dec = Decoder::open_camera(&source, Duration::from_secs(5), 1).unwrap();
        assert_eq!((dec.info().width, dec.info().height), (640, 480));
        for _ in 0..3 {
            let frame = dec
                .next_frame()
                .unwrap()
                .expect("a live source does not end");
            assert_eq!(frame.rgb().width(), 640);
        }
        assert!(dec.tally().decoded >= 3);
        // Nothing listens on port 1.
        let source: CameraSource = "rtsp://127.0.0.1:1/none".parse().unwrap();
        let err = Decoder::open_camera(&source, Duration::from_secs(5), 1)
            .err()
            .expect("refused");
        assert!(matches!(err, DecodeError::Io(_)), "{err}");
    }

    #[test]
    fn a_live_source_converts_only_what_the_rule_lets_through_and_counts_every_frame() {
        // 15 frames a second; one in four goes on to conversion.
        let source: CameraSource = "test:ball".parse().unwrap();
        let mut dec = Decoder::open_camera(&source, Duration::from_secs(1), 1).unwrap();
        let mut seen = 0u64;
        dec.skip_unused(move |_| {
            seen += 1;
            seen.is_multiple_of(4)
        });
        let started = std::time::Instant::now();
        let mut got = 0u64;
        while started.elapsed() < Duration::from_secs(3) {
            dec.next_frame()
                .unwrap()
                .expect("a live source does not end");
            got += 1;
        }
        let crate::decode::Tally {
            decoded, converted, ..
        } = dec.tally();
        assert!(decoded >= 35, "{decoded} frames decoded in 3 s");
        // A quarter, and the few that passed before the rule was set.
        assert!(
            converted * 2 < decoded,
            "{converted} of {decoded} frames converted"
        );
        assert!(got <= converted, "{got} frames taken");

        // Turned down for longer than the stall timeout: the source still
        // delivers, so it is not stalled.
        let open_at = std::time::Instant::now() + Duration::from_millis(1500);
        dec.skip_unused(move |_| std::time::Instant::now() >= open_at);
        loop {
            dec.next_frame()
                .unwrap()
                .expect("a live source does not end");
            if std::time::Instant::now() >= open_at {
                break;
            }
        }
    }

    #[test]
    fn a_file_played_as_a_camera_keeps_its_pace_while_its_frames_are_dropped() {
        // bikes.mp4, 10 s at 25 fps, every frame turned down for a second:
        // dropped frames are held for as long as the sink would hold them,
        // so the decoder does not race ahead to the end of the clip.
        let path = crate::decode::test_support::media("bikes.mp4");
        let opened = std::time::Instant::now();
        let mut dec =
            Decoder::open_camera(&CameraSource::File(path), Duration::from_secs(5), 1).unwrap();
        let open_at = std::time::Instant::now() + Duration::from_secs(1);
        // Closed as a camera's rule is while it analyses: whenever the
        // frame is due.
        dec.skip_unused(move |_| std::time::Instant::now() >= open_at);
        let frame = loop {
            let frame = dec.next_frame().unwrap().expect("1 s of a 10 s clip");
            if frame.ready_at() >= open_at {
                break frame;
            }
        };
        // Not ahead of the clip's time. (Behind it by as long as opening
        // took on a loaded host: the clip starts playing once prerolled.)
        let playing_ms = opened.elapsed().as_millis() as u64;
        assert!(
            frame.pts_ms() <= playing_ms + 300,
            "frame at {} ms taken {playing_ms} ms after opening",
            frame.pts_ms()
        );
        let tally = dec.tally();
        assert!(
            tally.undecoded > 0 && tally.decoded + tally.undecoded <= 45,
            "{tally:?} in about 1 s of a 25 fps clip"
        );
    }

    #[test]
    fn a_file_played_as_a_camera_says_when_the_sink_hands_each_frame_over() {
        // bikes.mp4 at its 25 fps: each frame is decoded about a frame ahead
        // of its time, and the sink holds it until then.
        let path = crate::decode::test_support::media("bikes.mp4");
        let mut dec =
            Decoder::open_camera(&CameraSource::File(path), Duration::from_secs(5), 1).unwrap();
        let judged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = judged.clone();
        dec.skip_unused(move |f| {
            let held = f
                .ready_at
                .saturating_duration_since(std::time::Instant::now());
            log.lock().unwrap().push((f.t_ms, f.ready_at, held));
            true
        });
        let mut taken = Vec::new();
        for _ in 0..30 {
            let frame = dec.next_frame().unwrap().expect("2 s of a 10 s clip");
            taken.push((frame.pts_ms(), frame.ready_at()));
        }
        let judged = judged.lock().unwrap().clone();
        let mut held: Vec<u128> = judged.iter().map(|j| j.2.as_millis()).collect();
        held.sort_unstable();
        let median = held[held.len() / 2];
        assert!((10..=200).contains(&median), "held {held:?} ms");
        // Each frame carries the instant the rule judged it by (the rule's
        // copy before the decoder judged it too, a little earlier).
        for (t, ready_at) in &taken {
            assert!(
                judged.iter().any(|j| (j.0, j.1) == (*t, *ready_at)),
                "frame at {t} ms: judged {:?}",
                judged.iter().filter(|j| j.0 == *t).collect::<Vec<_>>()
            );
        }
    }
}
