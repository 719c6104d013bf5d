//! The face stage of a job: on tracked frames where someone is in view, find
//! the faces, track them with a tracker of their own, keep the best face per
//! track per period, and embed only the kept ones (docs/FACES.md). What
//! leaves is a [`FaceSighting`]: the vector, a JPEG of the face and its time.

use image::RgbImage;
use wayside_vision::face::keeper::{BestPerTrack, Kept};
use wayside_vision::face::{FaceEngine, FaceSession};
use wayside_vision::track::{TrackState, Tracker};
use wayside_vision::{BBox, RgbFrame};

use super::PipelineError;
use crate::config::FacesConfig;

/// One kept face, ready for the data API.
#[derive(Debug, Clone)]
pub struct FaceSighting {
    /// The face track's id within its job or camera.
    pub track_id: u64,
    /// Video time of the frame the face was taken from.
    pub t_ms: u64,
    /// Unit length, 512 values.
    pub vector: Vec<f32>,
    /// JPEG of the face with some of the head around it, for a person to see.
    pub jpeg: Vec<u8>,
}

/// What the keeper holds for a candidate face until its period closes: the
/// frame is gone by then, so both crops are cut when the face is offered.
struct Candidate {
    aligned: RgbImage,
    picture: RgbImage,
}

pub struct FaceStage<'a> {
    session: FaceSession<'a>,
    tracker: Tracker,
    keeper: BestPerTrack<Candidate>,
    config: &'a FacesConfig,
    jpeg_quality: u8,
}

impl<'a> FaceStage<'a> {
    pub fn new(
        engine: &'a FaceEngine,
        config: &'a FacesConfig,
        jpeg_quality: u8,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            session: engine.session()?,
            tracker: Tracker::new(config.tracker.clone())?,
            keeper: BestPerTrack::new(&config.keeper),
            config,
            jpeg_quality,
        })
    }

    /// One tracked frame. `people_in_view` says whether the object detector
    /// saw a person: without one the face detector is not run (an empty
    /// road costs nothing), but the face tracker still ages its tracks.
    pub fn observe(
        &mut self,
        frame: &RgbFrame,
        t_ms: u64,
        people_in_view: bool,
    ) -> Result<Vec<FaceSighting>, PipelineError> {
        let found = if people_in_view {
            self.session.detect(frame)?
        } else {
            Vec::new()
        };
        let detections = wayside_vision::face::detect::as_detections(&found);
        let tracks = self.tracker.update(&detections, t_ms);
        for t in tracks.iter().filter(|t| t.state == TrackState::Confirmed) {
            let Some(face) = t.detection.and_then(|i| found.get(i)) else {
                continue;
            };
            let aligned = self.session.align(frame, face)?;
            let q = self.session.quality(face, &aligned);
            if q.passed() {
                let picture = picture(frame, &face.bbox, self.config.picture_margin);
                self.keeper
                    .offer(t.id, q.value, t_ms, Candidate { aligned, picture });
            }
        }
        let due = self
            .keeper
            .poll(t_ms, |id| tracks.iter().any(|t| t.id == id));
        self.finish_all(due)
    }

    /// The faces still held when the stream ends.
    pub fn finish(mut self) -> Result<Vec<FaceSighting>, PipelineError> {
        let keeper = std::mem::replace(&mut self.keeper, BestPerTrack::new(&self.config.keeper));
        self.finish_all(keeper.finish())
    }

    fn finish_all(
        &mut self,
        kept: Vec<Kept<Candidate>>,
    ) -> Result<Vec<FaceSighting>, PipelineError> {
        kept.into_iter()
            .map(|k| {
                Ok(FaceSighting {
                    track_id: k.track_id,
                    t_ms: k.t_ms,
                    vector: self.session.embed(&k.payload.aligned)?.into_vec(),
                    jpeg: super::encode_jpeg(&k.payload.picture, self.jpeg_quality)?,
                })
            })
            .collect()
    }
}

/// The face box grown by `margin` of its size on every side, clamped to the
/// frame, copied out.
fn picture(frame: &RgbFrame, b: &BBox, margin: f32) -> RgbImage {
    let (w, h) = (frame.width() as f32, frame.height() as f32);
    let (mx, my) = (b.width() * margin, b.height() * margin);
    let x1 = (b.x1 - mx).clamp(0.0, w - 1.0) as u32;
    let y1 = (b.y1 - my).clamp(0.0, h - 1.0) as u32;
    let x2 = ((b.x2 + mx).clamp(0.0, w) as u32).max(x1 + 1);
    let y2 = ((b.y2 + my).clamp(0.0, h) as u32).max(y1 + 1);
    let (cw, ch) = (x2 - x1, y2 - y1);
    let stride = frame.stride();
    let data = frame.data();
    let mut out = Vec::with_capacity((cw * ch * 3) as usize);
    for y in y1..y2 {
        let row = y as usize * stride + x1 as usize * 3;
        out.extend_from_slice(&data[row..row + cw as usize * 3]);
    }
    RgbImage::from_raw(cw, ch, out).expect("cw * ch * 3 bytes")
}
