//! The face stage of a job: on tracked frames where someone is in view, find
//! the faces, track them with a tracker of their own, keep the best face per
//! track per period, and embed only the kept ones (docs/FACES.md). What
//! leaves is a [`FaceSighting`]: the vector, a JPEG of the face and its time.

use image::RgbImage;
use wayside_vision::Detection;
use wayside_vision::face::detect::head_region;
use wayside_vision::face::keeper::{BestPerTrack, Kept};
use wayside_vision::face::{FaceEngine, FaceSession};
use wayside_vision::track::{TrackState, Tracker};

use super::PipelineError;
use crate::config::FacesConfig;
use crate::decode::DecodedFrame;

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
            session: engine.session(),
            tracker: Tracker::new(config.tracker.clone())?,
            keeper: BestPerTrack::new(&config.keeper),
            config,
            jpeg_quality,
        })
    }

    /// One tracked frame, with the object detector's findings. The face
    /// detector only runs when someone is close enough to show a face the
    /// quality gate could keep, and only around their heads ([`head_region`]):
    /// an empty road, or passers-by far from the camera, cost nothing. The
    /// face tracker still ages its tracks on the other frames.
    pub fn observe(
        &mut self,
        frame: &DecodedFrame,
        t_ms: u64,
        objects: &[Detection],
    ) -> Result<Vec<FaceSighting>, PipelineError> {
        let found = match head_region(objects, self.config.quality.min_face_px) {
            Some(region) => self.session.detect_near(frame.yuv(), region)?,
            None => Vec::new(),
        };
        let detections = wayside_vision::face::detect::as_detections(&found);
        let tracks = self.tracker.update(&detections, t_ms);
        for t in tracks.iter().filter(|t| t.state == TrackState::Confirmed) {
            let Some(face) = t.detection.and_then(|i| found.get(i)) else {
                continue;
            };
            let aligned = self.session.align(&frame.rgb(), face)?;
            let q = self.session.quality(face, &aligned);
            if q.passed() {
                let picture = super::crop(&frame.rgb(), &face.bbox, self.config.picture_margin);
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
