//! Detector, rectifier, recogniser and grammar together: an image (or a
//! vehicle's box in a frame) in, checked plate readings out. Voting a
//! track's readings ([`super::vote`]) is the caller's, since only it knows
//! which vehicle a frame's plate belongs to.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::decode::{Corners, PlateDetection};
use super::detect::{PlateDetector, PlateDetectorSession};
use super::grammar::{GrammarConfig, PlateFormat, normalise_reading};
use super::recognize::{ClassShape, Reading, Recognizer, RecognizerSession};
use super::rectify::{Rectifier, RectifyConfig};
use super::{PlateConfigError, PlateError};
use crate::{BBox, RgbFrame};

/// One plate of an image, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateRead {
    /// Frame pixels (of the frame given to [`PlateSession::read_region`]).
    pub bbox: BBox,
    /// Frame pixels, reading order (top-left, top-right, bottom-right,
    /// bottom-left of the text).
    pub corners: Corners,
    /// Detector score, 0..1.
    pub detection_score: f32,
    /// The recogniser's reading, normalised ([`super::grammar::normalise`]).
    pub reading: Reading,
    /// `None` when the reading is not shaped like a plate.
    pub format: Option<PlateFormat>,
    /// The recogniser's best reading was no plate, and this is its best
    /// reading that is ([`GrammarConfig::repair`]).
    pub repaired: bool,
}

impl PlateRead {
    pub fn valid(&self) -> bool {
        self.format.is_some()
    }
}

/// How a vehicle's box becomes the image the detector sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegionConfig {
    /// Search only this lower fraction of the box: plates sit low on cars,
    /// vans, buses and trucks, and the detector needs a plate to be about a
    /// tenth of the longer side of what it is given (below ~60 px in its
    /// 640² input it misses plates). A bus front is twice as tall as wide:
    /// whole, its plate is 5–8 % of the height and scored 0.03–0.9 on the
    /// test frames; its lower 60 % scored 0.8–1.0 (docs/PLATES.md).
    pub lower: f32,
    /// Grow the kept box by this fraction of its width and height on each
    /// side: a tracked box lags a moving vehicle, and the object detector's
    /// boxes cut bumpers, where plates sit.
    pub margin: f32,
    /// Smaller regions (shorter side, frame pixels) are not searched: a
    /// vehicle that small has a plate of a few pixels, below what the
    /// recogniser can read (the bus photo's 27 × 9 px plate is unreadable).
    pub min_side_px: f32,
    /// When the region holds no plate the detector finds, search its two
    /// halves along the longer side as well (up to two more detector runs
    /// per miss).
    pub split_when_missed: bool,
}

impl Default for RegionConfig {
    fn default() -> Self {
        Self {
            lower: 0.6,
            margin: 0.05,
            min_side_px: 64.0,
            split_when_missed: true,
        }
    }
}

impl RegionConfig {
    pub fn validate(&self) -> Result<(), PlateConfigError> {
        if !(self.lower > 0.0 && self.lower <= 1.0) {
            return Err(PlateConfigError {
                field: "lower",
                reason: "must be in (0, 1]",
            });
        }
        if !(0.0..=1.0).contains(&self.margin) {
            return Err(PlateConfigError {
                field: "margin",
                reason: "must be 0..=1",
            });
        }
        if !(self.min_side_px.is_finite() && self.min_side_px >= 1.0) {
            return Err(PlateConfigError {
                field: "min_side_px",
                reason: "must be a number >= 1",
            });
        }
        Ok(())
    }
}

/// The loaded plate models; shared read-only (clone it or share it by
/// reference), each inference thread takes its own [`PlateSession`].
#[derive(Debug, Clone)]
pub struct PlateEngine {
    detector: PlateDetector,
    recognizer: Recognizer,
    rectifier: Rectifier,
    grammar: GrammarConfig,
    /// The grammar's plate shapes in the recogniser's classes, for repair.
    shapes: Vec<ClassShape>,
}

impl PlateEngine {
    /// The rectifier is built from the recogniser's `[model.input]`, so
    /// plates are always straightened to the size it reads.
    pub fn new(
        detector: PlateDetector,
        mut recognizer: Recognizer,
        rectify: RectifyConfig,
        grammar: GrammarConfig,
    ) -> Result<Self, PlateError> {
        grammar.validate()?;
        recognizer.restrict(|c| grammar.allows(c));
        let rectifier = Rectifier::new(recognizer.preprocess(), rectify)?;
        let shapes = grammar
            .shapes()
            .iter()
            .filter_map(|s| recognizer.decoder().shape(s))
            .collect();
        Ok(Self {
            detector,
            recognizer,
            rectifier,
            grammar,
            shapes,
        })
    }

    pub fn session(&self) -> PlateSession<'_> {
        PlateSession {
            engine: self,
            detect: self.detector.session(),
            recognize: self.recognizer.session(),
        }
    }

    pub fn grammar(&self) -> &GrammarConfig {
        &self.grammar
    }

    pub fn rectifier(&self) -> &Rectifier {
        &self.rectifier
    }
}

/// Per-thread state of both models.
pub struct PlateSession<'a> {
    engine: &'a PlateEngine,
    detect: PlateDetectorSession<'a>,
    recognize: RecognizerSession<'a>,
}

impl PlateSession<'_> {
    /// Plates in `image`, best score first, not yet read.
    pub fn detect(&mut self, image: &RgbFrame) -> Result<Vec<PlateDetection>, PlateError> {
        self.detect.detect(image)
    }

    /// The plate straightened to the recogniser's input height.
    pub fn rectify(
        &self,
        image: &RgbFrame,
        plate: &PlateDetection,
    ) -> Result<RgbImage, PlateError> {
        self.engine.rectifier.rectify(image, &plate.corners)
    }

    /// The recogniser's raw reading of a rectified plate.
    pub fn recognize(&mut self, rectified: &RgbImage) -> Result<Reading, PlateError> {
        self.recognize.read(rectified)
    }

    /// Rectify, recognise, normalise and check one detected plate; repair
    /// a reading that is no plate when the grammar allows.
    pub fn read_plate(
        &mut self,
        image: &RgbFrame,
        plate: &PlateDetection,
    ) -> Result<PlateRead, PlateError> {
        let e = self.engine;
        let rectified = self.rectify(image, plate)?;
        let probs = self.recognize.probabilities(&rectified)?;
        let ctc = e.recognizer.decoder();
        let mut reading = normalise_reading(&ctc.decode(&probs)?);
        let mut format = e.grammar.check(&reading.text);
        let mut repaired = false;
        if format.is_none() && e.grammar.repair {
            let best = ctc.best_path_log_prob(&probs);
            let fitted = e
                .shapes
                .iter()
                .filter_map(|s| ctc.decode_shape(&probs, s))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((fit, log_prob)) = fitted
                && log_prob - best >= e.grammar.repair_min_ratio.ln()
            {
                let fit = normalise_reading(&fit);
                format = e.grammar.check(&fit.text);
                repaired = format.is_some();
                if repaired {
                    reading = fit;
                }
            }
        }
        Ok(PlateRead {
            bbox: plate.bbox,
            corners: plate.corners,
            detection_score: plate.score,
            reading,
            format,
            repaired,
        })
    }

    /// Every plate in `image` (a whole frame, or a vehicle crop), read, best
    /// detection first. Readings the grammar refuses are included (see
    /// [`PlateRead::format`]): whether to use them is the caller's call.
    pub fn read(&mut self, image: &RgbFrame) -> Result<Vec<PlateRead>, PlateError> {
        let plates = self.detect(image)?;
        plates.iter().map(|p| self.read_plate(image, p)).collect()
    }

    /// [`Self::read`] inside `region` of `frame` (a tracked vehicle's box):
    /// its lower `config.lower`, grown by `config.margin`; boxes and corners
    /// in frame pixels. The region is a view into the frame, not a copy.
    /// Empty when the region is smaller than `config.min_side_px`.
    pub fn read_region(
        &mut self,
        frame: &RgbFrame,
        region: BBox,
        config: &RegionConfig,
    ) -> Result<Vec<PlateRead>, PlateError> {
        let Some(area) = search_area(frame, region, config) else {
            return Ok(Vec::new());
        };
        let mut reads = self.read_area(frame, area)?;
        if reads.is_empty() && config.split_when_missed {
            // Letterboxed whole, a wide region leaves a small plate below
            // what the detector finds; each half gives it up to twice the
            // pixels. Only on a miss: a found plate costs no more.
            for half in halves(area) {
                reads.extend(self.read_area(frame, half)?);
            }
            reads.sort_by(|a, b| b.detection_score.total_cmp(&a.detection_score));
            let mut kept: Vec<PlateRead> = Vec::with_capacity(reads.len());
            for r in reads {
                if kept.iter().all(|k| k.bbox.iou(&r.bbox) < 0.3) {
                    kept.push(r);
                }
            }
            reads = kept;
        }
        Ok(reads)
    }

    /// [`Self::read`] on `area` of `frame` (whole pixels, inside it), boxes
    /// and corners moved to frame pixels.
    fn read_area(&mut self, frame: &RgbFrame, area: BBox) -> Result<Vec<PlateRead>, PlateError> {
        let Some(view) = sub_view(frame, area) else {
            return Ok(Vec::new());
        };
        let (dx, dy) = (area.x1, area.y1);
        let mut reads = self.read(&view)?;
        for r in &mut reads {
            r.bbox = BBox::new(
                r.bbox.x1 + dx,
                r.bbox.y1 + dy,
                r.bbox.x2 + dx,
                r.bbox.y2 + dy,
            );
            r.corners = r.corners.map(|[x, y]| [x + dx, y + dy]);
        }
        Ok(reads)
    }
}

/// The lower part of `region` grown by the margin, whole pixels, clamped
/// to the frame; `None` when smaller than `config.min_side_px`.
fn search_area(frame: &RgbFrame, region: BBox, config: &RegionConfig) -> Option<BBox> {
    let region = BBox::new(
        region.x1,
        region.y2 - region.height() * config.lower,
        region.x2,
        region.y2,
    );
    let (mx, my) = (
        region.width() * config.margin,
        region.height() * config.margin,
    );
    let grown = BBox::new(
        (region.x1 - mx).floor(),
        (region.y1 - my).floor(),
        (region.x2 + mx).ceil(),
        (region.y2 + my).ceil(),
    )
    .clamp(frame.width() as f32, frame.height() as f32);
    let side = grown.width().min(grown.height());
    (side >= config.min_side_px).then_some(grown)
}

/// The two overlapping halves of `area` along its longer side, each 60 %
/// of it, so a plate up to a fifth of that side lies whole in one.
fn halves(area: BBox) -> [BBox; 2] {
    let BBox { x1, y1, x2, y2 } = area;
    if area.width() >= area.height() {
        let w = (area.width() * 0.6).round();
        [BBox::new(x1, y1, x1 + w, y2), BBox::new(x2 - w, y1, x2, y2)]
    } else {
        let h = (area.height() * 0.6).round();
        [BBox::new(x1, y1, x2, y1 + h), BBox::new(x1, y2 - h, x2, y2)]
    }
}

/// `area` (whole pixels, inside the frame) as a borrowed view of `frame`.
fn sub_view<'a>(frame: &RgbFrame<'a>, area: BBox) -> Option<RgbFrame<'a>> {
    let (x0, y0) = (area.x1 as usize, area.y1 as usize);
    let (w, h) = (area.width() as u32, area.height() as u32);
    let start = y0 * frame.stride() + 3 * x0;
    RgbFrame::new(w, h, frame.stride(), frame.data().get(start..)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view<'a>(
        frame: &RgbFrame<'a>,
        region: BBox,
        config: &RegionConfig,
    ) -> Option<(RgbFrame<'a>, [f32; 2])> {
        let area = search_area(frame, region, config)?;
        Some((sub_view(frame, area)?, [area.x1, area.y1]))
    }

    #[test]
    fn a_region_is_a_view_grown_by_the_margin_and_clamped() {
        // 20 x 10 frame whose pixel (x, y) holds (x, y, 0).
        let img = RgbImage::from_fn(20, 10, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let frame = RgbFrame::from_image(&img).unwrap();
        let config = RegionConfig {
            lower: 1.0,
            margin: 0.25,
            min_side_px: 2.0,
            split_when_missed: false,
        };
        // 8 x 4 box at (6, 3): grown by 2 and 1 → (4, 2)..(16, 8).
        let (v, offset) = view(&frame, BBox::new(6.0, 3.0, 14.0, 7.0), &config).unwrap();
        assert_eq!((v.width(), v.height(), offset), (12, 6, [4.0, 2.0]));
        let px = |v: &RgbFrame, x: usize, y: usize| {
            let i = y * v.stride() + 3 * x;
            [v.data()[i], v.data()[i + 1]]
        };
        assert_eq!(px(&v, 0, 0), [4, 2]);
        assert_eq!(px(&v, 11, 5), [15, 7]);
        // Clamped at the frame's edge.
        let (v, offset) = view(&frame, BBox::new(15.0, 5.0, 20.0, 10.0), &config).unwrap();
        assert_eq!(offset, [13.0, 3.0]);
        assert_eq!((v.width(), v.height()), (7, 7));
        assert_eq!(px(&v, 6, 6), [19, 9]);
        // Too small, or outside the frame.
        let big = RegionConfig {
            min_side_px: 8.0,
            ..config
        };
        assert!(view(&frame, BBox::new(6.0, 3.0, 14.0, 7.0), &big).is_none());
        assert!(view(&frame, BBox::new(30.0, 30.0, 40.0, 40.0), &config).is_none());
        // Only the lower half of a box 8 high: (6, 5)..(14, 9), grown by 2
        // and 1 → (4, 4)..(16, 10).
        let half = RegionConfig {
            lower: 0.5,
            ..config
        };
        let (v, offset) = view(&frame, BBox::new(6.0, 1.0, 14.0, 9.0), &half).unwrap();
        assert_eq!((v.width(), v.height(), offset), (12, 6, [4.0, 4.0]));
    }

    #[test]
    fn halves_split_the_longer_side_and_overlap() {
        let [a, b] = halves(BBox::new(10.0, 20.0, 110.0, 60.0));
        assert_eq!(a, BBox::new(10.0, 20.0, 70.0, 60.0));
        assert_eq!(b, BBox::new(50.0, 20.0, 110.0, 60.0));
        let [a, b] = halves(BBox::new(0.0, 0.0, 30.0, 50.0));
        assert_eq!(a, BBox::new(0.0, 0.0, 30.0, 30.0));
        assert_eq!(b, BBox::new(0.0, 20.0, 30.0, 50.0));
    }

    #[test]
    fn region_config_is_validated_by_field() {
        assert!(RegionConfig::default().validate().is_ok());
        let bad = RegionConfig {
            margin: -0.1,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "margin");
        let bad = RegionConfig {
            lower: 0.0,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "lower");
        let bad = RegionConfig {
            min_side_px: f32::NAN,
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "min_side_px");
    }
}
