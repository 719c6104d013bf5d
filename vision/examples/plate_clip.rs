//! Frames of a car with a synthetic Chinese plate: the input of the daemon's
//! plate test (tests/tests/plates_video.rs), which makes a clip of them and
//! sends it through `POST /video`. No video with a readable plate ships in
//! any registry package (tests/fixtures/plates/README.md).
//!
//! ```text
//! cargo run -p wayside-vision --example plate_clip -- OUT_DIR TEXT FRAMES [SCENE] [SEED]
//! ```
//!
//! Writes `OUT_DIR/frame_000.png` … : one of the accuracy test's scenes
//! (`SCENE`: 0 the car rear, 1 the bus front, 2 the minibus side, the
//! default: the object detector finds that vehicle surely in every frame,
//! the blurred car rear only in some), its plate `TEXT` redrawn in every
//! frame with a little pose, lighting and noise of its own, as a camera sees
//! a vehicle waiting at a light.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/plate_render.rs"]
mod render;

use std::path::PathBuf;

use render::{Conditions, Rng, SCENES, Scene, Style};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: plate_clip OUT_DIR TEXT FRAMES [SCENE] [SEED]";
    let out = PathBuf::from(args.next().ok_or(usage)?);
    let text = args.next().ok_or(usage)?;
    let frames: usize = args.next().ok_or(usage)?.parse()?;
    let which: usize = args.next().map_or(Ok(2), |s| s.parse())?;
    let seed: u64 = args.next().map_or(Ok(7), |s| s.parse())?;
    let style = match text.chars().count() {
        7 => Style::Blue,
        8 => Style::Green,
        n => return Err(format!("{text:?}: {n} characters, a plate has 7 or 8").into()),
    };
    // One distance to the camera, so every frame has the same size.
    let scene: &'static Scene = Box::leak(Box::new(Scene {
        scale: (1.0, 1.0),
        ..*SCENES.get(which).ok_or("SCENE is 0, 1 or 2")?
    }));
    let conditions = Conditions {
        roll: 2.0,
        yaw: 0.05,
        pitch: 0.03,
        gain: (0.9, 1.05),
        blur: (0.0, 0.4),
        noise: (0.0, 2.0),
        jpeg: (85.0, 95.0),
    };
    let photo = image::open(common::media(scene.photo))?.to_rgb8();
    let font = render::font();
    let mut rng = Rng::new(seed);
    std::fs::create_dir_all(&out)?;
    for i in 0..frames {
        let s = render::sample(&font, scene, &photo, &text, style, &conditions, &mut rng);
        s.frame.save(out.join(format!("frame_{i:03}.png")))?;
    }
    Ok(())
}
