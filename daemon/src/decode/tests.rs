//! Decoding real media from the model cache, and variants made on the fly.

use std::path::Path;

use super::test_support::{Scratch, ffmpeg, ffmpeg_first_frame_rgb, mean_abs_diff, media};
use super::*;

/// Frame times and sizes of a whole file.
struct Decoded {
    info: VideoInfo,
    pts: Vec<u64>,
    sizes: Vec<(u32, u32)>,
}

fn decode_all(path: &Path) -> Decoded {
    let mut dec = Decoder::open(path, 1).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let info = dec.info().clone();
    let (mut pts, mut sizes) = (Vec::new(), Vec::new());
    while let Some(frame) = dec.next_frame().expect("decodes to the end") {
        let rgb = frame.rgb();
        pts.push(frame.pts_ms());
        sizes.push((rgb.width(), rgb.height()));
    }
    Decoded { info, pts, sizes }
}

fn assert_increasing(pts: &[u64]) {
    assert_eq!(pts.first(), Some(&0), "times start at 0");
    for w in pts.windows(2) {
        assert!(w[0] < w[1], "pts not increasing: {} then {}", w[0], w[1]);
    }
}

/// A small test clip: the first `frames` frames of bikes.mp4 at 320x136.
fn clip(scratch: &Scratch, name: &str, frames: u32, codec_args: &[&str]) -> std::path::PathBuf {
    let out = scratch.path(name);
    let n = frames.to_string();
    let src = media("bikes.mp4");
    let mut args = vec!["-i", src.to_str().expect("utf-8 path")];
    args.extend(["-frames:v", &n, "-vf", "scale=320:136"]);
    args.extend(codec_args);
    args.push(out.to_str().expect("utf-8 path"));
    ffmpeg(&args);
    out
}

#[test]
fn vtest_avi_decodes_every_frame_in_order() {
    let d = decode_all(&media("vtest.avi"));
    assert_eq!((d.info.width, d.info.height), (768, 576));
    assert_eq!(d.info.fps, Some(10.0));
    let duration = d.info.duration_ms.expect("AVI declares its duration");
    assert!((79_000..=80_000).contains(&duration), "duration {duration}");
    assert!((790..=800).contains(&d.pts.len()), "{} frames", d.pts.len());
    assert_increasing(&d.pts);
    // 10 fps: frames are 100 ms apart.
    assert_eq!(d.pts[1], 100);
    assert!(d.sizes.iter().all(|&s| s == (768, 576)));
}

#[test]
fn bikes_mp4_matches_an_independent_decode() {
    let path = media("bikes.mp4");
    let mut dec = Decoder::open(&path, 1).expect("opens");
    let info = dec.info().clone();
    assert_eq!((info.width, info.height), (640, 272));
    assert_eq!(info.fps, Some(25.0));
    let duration = info.duration_ms.expect("mp4 declares its duration");
    assert!((9_500..=10_500).contains(&duration), "duration {duration}");

    let frame = dec.next_frame().expect("decodes").expect("has a frame");
    assert_eq!(frame.pts_ms(), 0);
    let rgb = frame.rgb();
    assert_eq!(rgb.stride(), 640 * 3);
    let reference = ffmpeg_first_frame_rgb(&path);
    // Both decode the same YUV; only the colour conversion differs.
    let err = mean_abs_diff(&rgb.packed(), &reference);
    assert!(err < 3.0, "mean abs diff {err}");
}

#[test]
fn padded_rows_are_read_at_their_stride() {
    let scratch = Scratch::new("stride");
    let path = scratch.path("w266.mp4");
    ffmpeg(&[
        "-i",
        media("bikes.mp4").to_str().expect("utf-8 path"),
        "-frames:v",
        "5",
        "-vf",
        "scale=266:114",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        path.to_str().expect("utf-8 path"),
    ]);
    let mut dec = Decoder::open(&path, 1).expect("opens");
    let frame = dec.next_frame().expect("decodes").expect("has a frame");
    assert_eq!((frame.width(), frame.height()), (266, 114));
    // Y rows of 266 bytes and U, V rows of 133, padded to multiples of 4.
    let strides = frame.planes.map(|(_, stride)| stride);
    assert_eq!(strides, [268, 136, 136]);
    let err = mean_abs_diff(&frame.rgb().packed(), &ffmpeg_first_frame_rgb(&path));
    assert!(err < 3.0, "mean abs diff {err}: rows misread?");
}

#[test]
fn container_and_codec_variants_decode_every_frame() {
    let scratch = Scratch::new("variants");
    let with_audio = ["-f", "lavfi", "-i", "sine=d=2"];
    let variants: Vec<(&str, Vec<&str>)> = vec![
        ("h264.mkv", vec!["-c:v", "libx264"]),
        (
            "vp8.webm",
            vec!["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"],
        ),
        (
            "vp9.webm",
            vec![
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
            ],
        ),
        ("mjpeg.avi", vec!["-c:v", "mjpeg", "-q:v", "5"]),
        // MPEG-TS timestamps start near 1.4 s: frames must still start at 0.
        ("h264.ts", vec!["-c:v", "libx264"]),
    ];
    for (name, codec) in variants {
        let path = clip(&scratch, name, 30, &codec);
        let d = decode_all(&path);
        assert_eq!(d.pts.len(), 30, "{name}: frame count");
        assert_eq!((d.info.width, d.info.height), (320, 136), "{name}");
        assert!(d.sizes.iter().all(|&s| s == (320, 136)), "{name}");
        assert_increasing(&d.pts);
        assert!(
            (1_120..=1_200).contains(&d.pts[29]),
            "{name}: last pts {}",
            d.pts[29]
        );
    }
    // Audio beside the video is ignored, not decoded, and does not fail.
    let path = scratch.path("with-audio.webm");
    let src = media("bikes.mp4");
    let mut args = vec!["-i", src.to_str().expect("utf-8 path")];
    args.extend(with_audio);
    args.extend([
        "-frames:v",
        "30",
        "-vf",
        "scale=320:136",
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-c:a",
        "libvorbis",
        "-shortest",
        path.to_str().expect("utf-8 path"),
    ]);
    ffmpeg(&args);
    assert_eq!(decode_all(&path).pts.len(), 30);
}

#[test]
fn frames_outlive_later_pulls() {
    // Holding frames must neither block the decoder nor alias their pixels.
    let mut dec = Decoder::open(&media("bikes.mp4"), 1).expect("opens");
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(dec.next_frame().expect("decodes").expect("has a frame"));
    }
    let reference = ffmpeg_first_frame_rgb(&media("bikes.mp4"));
    let first = held[0].rgb().packed().into_owned();
    assert!(
        mean_abs_diff(&first, &reference) < 3.0,
        "first frame overwritten"
    );
    let last = held[7].rgb().packed().into_owned();
    assert!(mean_abs_diff(&first, &last) > 0.5, "frames share memory");
    assert!(held.windows(2).all(|w| w[0].pts_ms() < w[1].pts_ms()));
}

/// Decode `path` keeping the frames at multiples of `every_ms`, as a
/// schedule does, and check what came out against `all`, every frame's
/// time: the frames decoded before the rule was set pass (a prefix of the
/// stream), then only those the rule keeps, and every frame is counted.
/// `each` sees every frame taken. Returns how many the rule kept.
fn assert_skips(
    path: &Path,
    all: &[u64],
    every_ms: u64,
    mut each: impl FnMut(&DecodedFrame),
) -> usize {
    let mut dec = Decoder::open(path, 1).expect("opens");
    dec.skip_unused(move |f| f.t_ms % every_ms == 0);
    let mut kept = Vec::new();
    while let Some(frame) = dec.next_frame().expect("decodes to the end, not truncated") {
        each(&frame);
        kept.push(frame.pts_ms());
    }
    let before = kept.iter().zip(all).take_while(|(a, b)| a == b).count();
    assert!((1..=8).contains(&before), "{before} frames before the rule");
    let want: Vec<u64> = all[before..]
        .iter()
        .copied()
        .filter(|t| t % every_ms == 0)
        .collect();
    assert_eq!(kept[before..], want[..]);
    assert_eq!(Some(dec.last_decoded_ms()), all.last().copied());
    let tally = dec.tally();
    assert_eq!(
        tally.decoded + tally.undecoded,
        all.len() as u64,
        "skipped ones too: {tally:?}"
    );
    assert_eq!(tally.converted, kept.len() as u64);
    want.len()
}

#[test]
fn skipped_frames_never_reach_the_consumer_and_the_rest_are_unchanged() {
    // bikes.mp4: 25 fps, 10 s. Keep one frame in five, as a 200 ms
    // schedule does.
    let path = media("bikes.mp4");
    let all = decode_all(&path);
    let mut pixels = None;
    let kept = assert_skips(&path, &all.pts, 200, |frame| {
        if frame.pts_ms() == 2000 {
            pixels = Some(frame.rgb().packed().into_owned());
        }
    });
    assert!(kept >= 45, "{kept} kept of {}", all.pts.len());

    // The frame at 2 s is the same frame as without skipping.
    let mut plain = Decoder::open(&path, 1).expect("opens");
    let same = loop {
        let frame = plain.next_frame().expect("decodes").expect("reaches 2 s");
        if frame.pts_ms() == 2000 {
            break frame.rgb().packed().into_owned();
        }
    };
    assert_eq!(pixels.expect("the frame at 2 s was kept"), same);
}

/// The times and pixels of the frames a job with a 200 ms schedule takes
/// from `path`, with or without telling the decoder its schedule, and how
/// many frames were dropped before decoding.
fn frames_a_job_takes(path: &Path, tell_decoder: bool) -> (Vec<(u64, u64)>, u64) {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut dec = Decoder::open(path, 1).expect("opens");
    let schedule = crate::pipeline::schedule::Schedule::new(200, 5.0, dec.info().fps);
    if tell_decoder {
        let mut copy = schedule.clone();
        dec.skip_unused(move |f| copy.slot(f.t_ms).track);
    }
    let mut schedule = schedule;
    let mut taken = Vec::new();
    while let Some(frame) = dec.next_frame().expect("decodes to the end") {
        if schedule.slot(frame.pts_ms()).track {
            let mut hash = DefaultHasher::new();
            frame.rgb().packed().hash(&mut hash);
            taken.push((frame.pts_ms(), hash.finish()));
        }
    }
    (taken, dec.tally().undecoded)
}

#[test]
fn frames_dropped_before_decoding_change_nothing_a_job_gets() {
    // 25 fps with B-frames (x264's and x265's default) in MP4 and in
    // MPEG-TS; H.265 with its unreferenced B-frames in a temporal sub-layer
    // of their own; and Motion JPEG, where no frame needs another. A 200 ms
    // schedule takes one frame in five.
    let scratch = Scratch::new("undecoded");
    let x265 = |params| ["-c:v", "libx265", "-x265-params", params];
    for (name, codec) in [
        ("h264.mp4", &["-c:v", "libx264"][..]),
        ("h264.ts", &["-c:v", "libx264"][..]),
        ("h265.mp4", &x265("log-level=warning")[..]),
        ("h265.ts", &x265("log-level=warning")[..]),
        (
            "h265-sub-layers.mkv",
            &x265("log-level=warning:temporal-layers=1")[..],
        ),
        ("mjpeg.avi", &["-c:v", "mjpeg", "-q:v", "5"][..]),
    ] {
        let path = clip(&scratch, name, 100, codec);
        let (all, none) = frames_a_job_takes(&path, false);
        assert_eq!(none, 0, "{name}");
        assert_eq!(all.len(), 20, "{name}: one frame in five");
        let (told, undecoded) = frames_a_job_takes(&path, true);
        assert_eq!(told, all, "{name}: the same frames, the same pixels");
        assert!(
            undecoded >= 30,
            "{name}: {undecoded} of 100 frames not decoded"
        );
    }
}

#[test]
fn a_stream_without_timestamps_is_timed_by_its_frames() {
    // A raw MJPEG stream carries no times and no frame rate; GStreamer
    // stamps only its first frame. ffmpeg, the reference, counts it at 25
    // frames a second, and so does the decoder: one frame every 40 ms, each
    // its own, and skipping works on them as on any stream.
    let scratch = Scratch::new("mjpeg");
    let path = clip(&scratch, "raw.mjpeg", 30, &["-c:v", "mjpeg", "-f", "mjpeg"]);
    let d = decode_all(&path);
    assert_eq!(d.pts, (0..30).map(|i| i * 40).collect::<Vec<u64>>());
    assert_eq!(d.info.duration_ms, None);
    let reference = ffmpeg(&[
        "-i",
        path.to_str().expect("utf-8 path"),
        "-f",
        "framemd5",
        "-",
    ]);
    let lines = String::from_utf8_lossy(&reference);
    let ffmpeg_pts: Vec<u64> = lines
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            l.split(',')
                .nth(2)
                .expect("pts column")
                .trim()
                .parse::<u64>()
                .expect("pts")
                * 40
        })
        .collect();
    assert_eq!(d.pts, ffmpeg_pts, "ffmpeg times the stream alike");

    assert!(assert_skips(&path, &d.pts, 200, |_| ()) >= 4);
}

#[test]
fn rotation_tag_is_applied() {
    let scratch = Scratch::new("rotate");
    let plain = clip(&scratch, "plain.mp4", 5, &["-c:v", "libx264"]);
    let rotated = scratch.path("rotated.mp4");
    ffmpeg(&[
        "-i",
        plain.to_str().expect("utf-8 path"),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        rotated.to_str().expect("utf-8 path"),
    ]);
    let mut dec = Decoder::open(&rotated, 1).expect("opens");
    assert_eq!((dec.info().width, dec.info().height), (136, 320));
    let frame = dec.next_frame().expect("decodes").expect("has a frame");
    // ffmpeg rotates by default, so it is an upright reference.
    let err = mean_abs_diff(&frame.rgb().packed(), &ffmpeg_first_frame_rgb(&rotated));
    assert!(err < 3.0, "mean abs diff {err}: not rotated the same way");
}

#[test]
fn text_empty_and_audio_files_are_not_video() {
    let scratch = Scratch::new("notvideo");
    let text = scratch.path("notes.mp4");
    std::fs::write(&text, "this is not a video, only some text\n".repeat(50)).expect("write");
    let empty = scratch.path("empty.mp4");
    std::fs::write(&empty, b"").expect("write");
    let audio = scratch.path("audio.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=d=1",
        "-c:a",
        "aac",
        audio.to_str().expect("utf-8 path"),
    ]);
    for path in [text, empty, audio] {
        match Decoder::open(&path, 1) {
            Err(DecodeError::NotVideo(_)) => {}
            Err(e) => panic!("{}: expected NotVideo, got {e}", path.display()),
            Ok(_) => panic!("{}: expected NotVideo, opened", path.display()),
        }
    }
}

#[test]
fn missing_file_is_an_io_error() {
    match Decoder::open(Path::new("/nonexistent/wayside/video.mp4"), 1) {
        Err(DecodeError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
        Err(e) => panic!("expected Io, got {e}"),
        Ok(_) => panic!("opened a missing file"),
    }
}

/// The first 40% of `src`'s bytes.
fn truncate(src: &Path, dst: &Path) {
    let bytes = std::fs::read(src).expect("read");
    std::fs::write(dst, &bytes[..bytes.len() * 4 / 10]).expect("write");
}

#[test]
fn truncated_faststart_mp4_reports_truncation_after_its_frames() {
    let scratch = Scratch::new("trunc-fast");
    let fast = scratch.path("fast.mp4");
    ffmpeg(&[
        "-i",
        media("bikes.mp4").to_str().expect("utf-8 path"),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        fast.to_str().expect("utf-8 path"),
    ]);
    let cut = scratch.path("cut.mp4");
    truncate(&fast, &cut);
    // The index (moov) survived, so the file opens and the frames whose
    // bytes are present decode; GStreamer then just sees EOS.
    let mut dec = Decoder::open(&cut, 1).expect("index intact, opens");
    let mut frames = 0;
    let err = loop {
        match dec.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => panic!("truncation went unnoticed after {frames} frames"),
            Err(e) => break e,
        }
    };
    assert!(
        frames > 20 && frames < 200,
        "{frames} frames before the cut"
    );
    match err {
        DecodeError::Truncated {
            ended_ms,
            duration_ms,
        } => {
            assert!(ended_ms < duration_ms / 2, "{ended_ms} of {duration_ms}");
            // Near the last frame decoded (25 fps; reordering may lose a few).
            assert!(
                ended_ms.abs_diff(frames * 40) <= 160,
                "ends at {ended_ms} after {frames} frames"
            );
        }
        e => panic!("expected Truncated, got {e}"),
    }
    // Once reported, the decoder stays at its end.
    assert!(dec.next_frame().expect("finished").is_none());
}

#[test]
fn truncated_moov_at_end_mp4_is_corrupt() {
    // bikes.mp4 keeps its index (moov) after the media data: cut short, the
    // index is gone and the demuxer finds no playable stream.
    let scratch = Scratch::new("trunc-end");
    let cut = scratch.path("cut.mp4");
    truncate(&media("bikes.mp4"), &cut);
    // Usually Corrupt ("no playable streams"); decodebin may instead report
    // that no video pad appeared, which is NotVideo. Both refuse the upload.
    match Decoder::open(&cut, 1) {
        Err(DecodeError::Corrupt(_) | DecodeError::NotVideo(_)) => {}
        Err(e) => panic!("expected Corrupt, got {e:?}"),
        Ok(_) => panic!("opened a file without its index"),
    }
}

#[test]
fn decoder_threads_are_limited_without_changing_a_pixel() {
    let path = media("bikes.mp4");
    let decode = |threads: u32| {
        let mut dec = Decoder::open(&path, threads).expect("opens");
        let set: Vec<i32> = dec
            .pipeline
            .iterate_all_by_element_factory_name("avdec_h264")
            .into_iter()
            .map(|e| e.expect("iterates").property("max-threads"))
            .collect();
        let mut frames = Vec::new();
        while let Some(frame) = dec.next_frame().expect("decodes") {
            frames.push(frame.rgb().packed().into_owned());
        }
        (set, frames)
    };
    let (one, limited) = decode(1);
    let (auto, unlimited) = decode(0);
    assert_eq!(one, [1], "the H.264 decoder gets one thread");
    assert_eq!(auto, [0], "0 leaves libav's choice");
    assert_eq!(limited.len(), 250);
    // libav's frame threading is bit-exact: the limit costs no accuracy.
    assert!(limited == unlimited, "frames differ with the thread count");
}
