//! The detector on real photos from registry packages, against boxes drawn by
//! hand (see tests/fixtures/README.md for where each photo comes from).

mod common;

use wayside_vision::classes::ResolvedClassMap;
use wayside_vision::detect::letterbox::Preprocess;
use wayside_vision::detect::{Detection, Detector, DetectorConfig, DetectorSession};
use wayside_vision::{BBox, Kind, RgbFrame};

/// Scores at or above this count as "found" for these checks.
const FOUND: f32 = 0.35;

fn load(model_id: &str, input: impl FnOnce(&mut Preprocess)) -> Detector {
    let entry = common::model(model_id);
    let mut preprocess = entry.input.clone();
    input(&mut preprocess);
    Detector::load(
        &entry.path(),
        preprocess,
        entry.decode(),
        ResolvedClassMap::default(),
        DetectorConfig::default(),
    )
    .expect("detector loads")
}

fn detect(model_id: &str, photo: &str) -> Vec<Detection> {
    found(&mut load(model_id, |_| ()).session(), photo)
}

/// What `session` finds in `photo` at [`FOUND`] or above.
fn found(session: &mut DetectorSession, photo: &str) -> Vec<Detection> {
    let img = image::open(common::media(photo))
        .expect("photo decodes")
        .to_rgb8();
    let frame = RgbFrame::from_image(&img).unwrap();
    let dets = session.detect(frame).unwrap();
    for d in &dets {
        assert!(d.bbox.x1 >= 0.0 && d.bbox.y1 >= 0.0, "{d:?} off the frame");
        assert!(
            d.bbox.x2 <= img.width() as f32 && d.bbox.y2 <= img.height() as f32,
            "{d:?} off the frame"
        );
    }
    dets.into_iter().filter(|d| d.score >= FOUND).collect()
}

fn best_match<'a>(dets: &'a [Detection], class: &str, truth: BBox) -> Option<(&'a Detection, f32)> {
    let class_id = wayside_vision::classes::COCO
        .iter()
        .position(|c| *c == class)
        .unwrap();
    dets.iter()
        .filter(|d| d.class_id == class_id)
        .map(|d| (d, d.bbox.iou(&truth)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn assert_found(dets: &[Detection], class: &str, truth: BBox, min_iou: f32) {
    let (d, iou) =
        best_match(dets, class, truth).unwrap_or_else(|| panic!("no {class} found in {dets:?}"));
    assert!(
        iou >= min_iou,
        "{class} at {truth:?}: best box {:?} has IoU {iou:.2}",
        d.bbox
    );
}

/// bus.jpg (810x1080): a bus and four people, two fully in view.
#[test]
fn street_with_bus_and_pedestrians() {
    for model in ["detector", "detector-int8"] {
        let dets = detect(model, "bus.jpg");
        assert_found(&dets, "bus", BBox::new(17.0, 228.0, 805.0, 745.0), 0.85);
        assert_found(&dets, "person", BBox::new(50.0, 398.0, 245.0, 905.0), 0.75);
        assert_found(&dets, "person", BBox::new(222.0, 405.0, 345.0, 860.0), 0.6);
        let people = dets.iter().filter(|d| d.kind == Kind::Pedestrian).count();
        assert!(
            (3..=5).contains(&people),
            "{model}: {people} people in bus.jpg"
        );
        let vehicles = dets.iter().filter(|d| d.kind == Kind::Vehicle).count();
        assert_eq!(vehicles, 1, "{model}: vehicles in bus.jpg: {dets:?}");
    }
}

/// zidane.jpg (1280x720): two men side by side.
#[test]
fn two_people_close_together() {
    let dets = detect("detector", "zidane.jpg");
    assert_found(&dets, "person", BBox::new(745.0, 40.0, 1145.0, 720.0), 0.8);
    let people = dets.iter().filter(|d| d.kind == Kind::Pedestrian).count();
    assert!(
        (2..=3).contains(&people),
        "{people} people in zidane.jpg: {dets:?}"
    );
}

/// The London bus photo (546x413): a wide, short frame, so a wrong letterbox
/// inversion would shift every box vertically.
#[test]
fn double_decker_bus_in_a_wide_frame() {
    let dets = detect("detector", "pexels_double_decker_bus.jpg");
    assert_found(&dets, "bus", BBox::new(62.0, 112.0, 475.0, 395.0), 0.85);
}

/// The manifest trims the detector's letterbox padding in blocks of 32
/// (416x288 for a 16:9 frame, 0.69x the pixels of 416x416). What it finds
/// must be what the full input finds, box for box, on wide, tall and
/// nearly square photos; one session goes through all of them, so it also
/// moves between input shapes, and back.
#[test]
fn trimmed_input_finds_what_the_full_input_finds() {
    let photos = [
        "zidane.jpg",
        "bus.jpg",
        "pexels_double_decker_bus.jpg",
        "messi5.jpg",
        "zidane.jpg",
    ];
    let fitted = load("detector", |p| {
        assert!(p.trim_padding.is_some(), "the manifest trims the padding")
    });
    let full = load("detector", |p| p.trim_padding = None);
    let (mut fitted, mut full) = (fitted.session(), full.session());
    for photo in photos {
        let (a, b) = (found(&mut fitted, photo), found(&mut full, photo));
        // None of these photos is square: trimming leaves a smaller input.
        let ([fw, fh], [w, h]) = (fitted.input_size().unwrap(), full.input_size().unwrap());
        assert_eq!([w, h], [416, 416], "{photo}: the declared input");
        assert!(fw * fh < w * h, "{photo}: {fw}x{fh} not trimmed");
        for (these, those, name) in [(&a, &b, "fitted"), (&b, &a, "full")] {
            for d in these.iter().filter(|d| d.score >= 0.45) {
                let class = wayside_vision::classes::COCO[d.class_id];
                let (m, iou) = best_match(those, class, d.bbox)
                    .unwrap_or_else(|| panic!("{photo}: {name} input's {d:?} not in {those:?}"));
                assert!(
                    iou >= 0.9 && (m.score - d.score).abs() <= 0.03,
                    "{photo}: {name} input's {d:?} best matched by {m:?} (IoU {iou:.2})"
                );
            }
        }
    }
}

/// A decoder's I420 frame, scaled plane by plane and converted after, finds
/// what its RGB finds: the same objects, boxes within a pixel or two.
#[test]
fn i420_frames_find_what_rgb_frames_find() {
    use wayside_vision::frame::{Colour, I420Frame, Matrix, Plane};
    use yuv::{YuvChromaSubsampling, YuvConversionMode, YuvPlanarImageMut, YuvRange};

    let detector = load("detector", |_| ());
    for photo in ["bus.jpg", "zidane.jpg"] {
        let img = image::open(common::media(photo)).unwrap().to_rgb8();
        let (w, h) = img.dimensions();
        let mut planar = YuvPlanarImageMut::<u8>::alloc(w, h, YuvChromaSubsampling::Yuv420);
        yuv::rgb_to_yuv420(
            &mut planar,
            img.as_raw(),
            3 * w,
            YuvRange::Limited,
            yuv::YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )
        .unwrap();
        let planes = [
            (planar.y_plane.borrow(), planar.y_stride),
            (planar.u_plane.borrow(), planar.u_stride),
            (planar.v_plane.borrow(), planar.v_stride),
        ]
        .map(|(data, stride)| Plane {
            data,
            stride: stride as usize,
        });
        let colour = Colour {
            matrix: Matrix::Bt601,
            full_range: false,
        };
        let yuv = I420Frame::new(w, h, planes, colour).unwrap();

        let rgb = found(&mut detector.session(), photo);
        let from_yuv: Vec<_> = detector
            .session()
            .detect(yuv)
            .unwrap()
            .into_iter()
            .filter(|d| d.score >= FOUND)
            .collect();
        assert!(!rgb.is_empty(), "{photo}: nothing found");
        // Scores near the threshold may fall either side of it.
        let sure = |d: &&Detection| d.score >= FOUND + 0.1;
        for d in rgb.iter().filter(sure) {
            let best = from_yuv
                .iter()
                .filter(|e| e.class_id == d.class_id)
                .map(|e| e.bbox.iou(&d.bbox))
                .fold(0.0, f32::max);
            assert!(
                best >= 0.9,
                "{photo}: {d:?} from RGB, best IoU {best:.2} from I420 in {from_yuv:?}"
            );
        }
        for d in from_yuv.iter().filter(sure) {
            assert!(
                rgb.iter()
                    .any(|e| e.class_id == d.class_id && e.bbox.iou(&d.bbox) >= 0.9),
                "{photo}: {d:?} found in I420 only"
            );
        }
    }
}
