//! Encoding real decoded frames, then checking the file as a browser would
//! see it: faststart layout, H.264 4:2:0, and the same frames back.

use std::path::Path;
use std::process::Command;

use super::*;
use crate::decode::Decoder;
use crate::decode::test_support::{Scratch, mean_abs_diff, media};

/// Top-level MP4 box names in file order.
fn top_level_boxes(path: &Path) -> Vec<String> {
    let data = std::fs::read(path).expect("read mp4");
    let mut boxes = Vec::new();
    let mut at = 0usize;
    while at + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        let name = String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned();
        let size = match size32 {
            0 => data.len() - at,
            1 => u64::from_be_bytes(data[at + 8..at + 16].try_into().expect("8 bytes")) as usize,
            n => n as usize,
        };
        boxes.push(name);
        assert!(size >= 8, "malformed box");
        at += size;
    }
    boxes
}

/// `stream=key` values ffprobe reports for the first video stream.
fn ffprobe_video(path: &Path, keys: &str) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .arg(format!("stream={keys}"))
        .args(["-of", "default=noprint_wrappers=1"])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Decode every frame of `path` into owned images with their times.
fn decode_images(path: &Path) -> Vec<(u64, image::RgbImage)> {
    let mut dec = Decoder::open(path, 1).expect("opens");
    let mut out = Vec::new();
    while let Some(f) = dec.next_frame().expect("decodes") {
        out.push((f.pts_ms(), f.into_rgb_image()));
    }
    out
}

#[test]
fn encodes_a_faststart_h264_mp4_that_decodes_back() {
    let scratch = Scratch::new("encode");
    let out = scratch.path("annotated.mp4");

    // 20 of the first 36 frames of bikes.mp4, with gaps, the way only
    // tracked frames reach the encoder.
    let mut dec = Decoder::open(&media("bikes.mp4"), 1).expect("opens");
    let mut pushed = Vec::new();
    let mut enc = Encoder::create(&out, 640, 272).expect("creates");
    let mut index = 0;
    while pushed.len() < 20 {
        let frame = dec.next_frame().expect("decodes").expect("enough frames");
        index += 1;
        if index % 5 == 2 || index % 5 == 4 {
            continue;
        }
        let t = frame.pts_ms();
        let img = frame.into_rgb_image();
        enc.push(&img, t).expect("pushes");
        pushed.push((t, img));
    }
    enc.finish().expect("finishes");

    let boxes = top_level_boxes(&out);
    let moov = boxes.iter().position(|b| b == "moov").expect("has moov");
    let mdat = boxes.iter().position(|b| b == "mdat").expect("has mdat");
    assert!(moov < mdat, "index after media data: {boxes:?}");

    let probe = ffprobe_video(&out, "codec_name,profile,pix_fmt,width,height");
    for expected in [
        "codec_name=h264",
        "profile=High",
        "pix_fmt=yuv420p",
        "width=640",
        "height=272",
    ] {
        assert!(probe.contains(expected), "{expected} not in {probe}");
    }

    let back = decode_images(&out);
    assert_eq!(back.len(), pushed.len(), "frame count");
    let first_pts = pushed[0].0;
    for ((pts, img), (want_pts, want)) in back.iter().zip(&pushed) {
        assert_eq!(img.dimensions(), (640, 272));
        assert!(
            pts.abs_diff(want_pts - first_pts) <= 1,
            "pts {pts} for a frame pushed at {want_pts}"
        );
        let err = mean_abs_diff(img.as_raw(), want.as_raw());
        assert!(err < 6.0, "frame at {pts}: mean abs diff {err}");
    }
    // The last frame lasts as long as the gap before it.
    let (last, before) = (pushed[19].0, pushed[18].0);
    let duration = Decoder::open(&out, 1)
        .expect("opens")
        .info()
        .duration_ms
        .expect("mp4 declares its duration");
    let want = last - first_pts + (last - before);
    assert!(
        duration.abs_diff(want) <= 2,
        "duration {duration}, want {want}"
    );
}

/// A diagonal gradient, so misplaced rows or columns show up as errors.
fn gradient(width: u32, height: u32, shift: u32) -> image::RgbImage {
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([
            ((x * 255) / width) as u8,
            ((y * 255) / height) as u8,
            (((x + y + shift) * 2) % 256) as u8,
        ])
    })
}

#[test]
fn odd_sizes_lose_their_last_row_and_column() {
    let scratch = Scratch::new("encode-odd");
    let out = scratch.path("odd.mp4");
    let mut enc = Encoder::create(&out, 267, 151).expect("creates");
    let frames: Vec<_> = (0..3).map(|i| gradient(267, 151, i * 10)).collect();
    for (i, f) in frames.iter().enumerate() {
        enc.push(f, i as u64 * 100).expect("pushes");
    }
    enc.finish().expect("finishes");

    let back = decode_images(&out);
    assert_eq!(back.len(), 3);
    for ((_, img), want) in back.iter().zip(&frames) {
        assert_eq!(img.dimensions(), (266, 150));
        let cropped = image::imageops::crop_imm(want, 0, 0, 266, 150).to_image();
        let err = mean_abs_diff(img.as_raw(), cropped.as_raw());
        assert!(err < 6.0, "mean abs diff {err}");
    }
}

#[test]
fn non_increasing_times_are_moved_forward() {
    let scratch = Scratch::new("encode-pts");
    let out = scratch.path("pts.mp4");
    let mut enc = Encoder::create(&out, 64, 48).expect("creates");
    for (i, pts) in [1000, 1000, 900, 1100].into_iter().enumerate() {
        enc.push(&gradient(64, 48, i as u32 * 40), pts)
            .expect("pushes");
    }
    enc.finish().expect("finishes");
    let pts: Vec<u64> = decode_images(&out).into_iter().map(|(p, _)| p).collect();
    assert_eq!(pts, [0, 1, 2, 100]);
}

#[test]
fn misuse_is_reported() {
    let scratch = Scratch::new("encode-misuse");
    assert!(matches!(
        Encoder::create(&scratch.path("tiny.mp4"), 1, 100),
        Err(EncodeError::InvalidSize(1, 100))
    ));
    assert!(matches!(
        Encoder::create(Path::new("/nonexistent/dir/out.mp4"), 64, 48),
        Err(EncodeError::Io(_))
    ));

    let mut enc = Encoder::create(&scratch.path("size.mp4"), 64, 48).expect("creates");
    assert!(matches!(
        enc.push(&gradient(48, 64, 0), 0),
        Err(EncodeError::FrameSize { got_width: 48, .. })
    ));
    assert!(matches!(enc.finish(), Err(EncodeError::NoFrames)));

    // An encoder dropped before finishing leaves no half-written file.
    let path = scratch.path("dropped.mp4");
    let mut enc = Encoder::create(&path, 64, 48).expect("creates");
    enc.push(&gradient(64, 48, 0), 0).expect("pushes");
    drop(enc);
    assert!(!path.exists(), "unfinished file left behind");
}
