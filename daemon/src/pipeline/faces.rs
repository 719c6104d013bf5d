//! The face stage of a job: on tracked frames where someone is in view, find
//! the faces, track them with a tracker of their own, keep the best face per
//! track per period, and embed only the kept ones (docs/FACES.md). What
//! leaves is a [`FaceSighting`]: the vector, a JPEG of the face and its time.

use image::RgbImage;
use wayside_vision::face::keeper::{BestPerTrack, Kept};
use wayside_vision::face::{FaceEngine, FaceSession};
use wayside_vision::track::{TrackState, Tracker};
use wayside_vision::{Detection, Kind, RgbFrame};

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
            session: engine.session(),
            tracker: Tracker::new(config.tracker.clone())?,
            keeper: BestPerTrack::new(&config.keeper),
            config,
            jpeg_quality,
        })
    }

    /// One tracked frame, with the object detector's findings. The face
    /// detector only runs when someone is close enough to show a face the
    /// quality gate could keep ([`could_show_a_face`]): an empty road, or
    /// passers-by far from the camera, cost nothing. The face tracker still
    /// ages its tracks on the other frames.
    pub fn observe(
        &mut self,
        frame: &RgbFrame,
        t_ms: u64,
        objects: &[Detection],
    ) -> Result<Vec<FaceSighting>, PipelineError> {
        let found = if could_show_a_face(objects, self.config.quality.min_face_px) {
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
                let picture = super::crop(frame, &face.bbox, self.config.picture_margin);
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

/// A face box is about a seventh of a standing person's height, and about
/// a quarter of the box of someone cut off at the waist by the frame's edge.
/// Below four face heights, no person box can hold a face the gate keeps.
const PERSON_TO_FACE: f32 = 4.0;

/// Whether any detected person is tall enough to show a face of at least
/// `min_face_px`. On the pedestrian clip (people 80–180 px tall in a 576 px
/// frame, faces of 10–25 px) this skips nearly every frame.
fn could_show_a_face(objects: &[Detection], min_face_px: f32) -> bool {
    objects
        .iter()
        .any(|d| d.kind == Kind::Pedestrian && d.bbox.height() >= min_face_px * PERSON_TO_FACE)
}

#[cfg(test)]
mod tests {
    use wayside_vision::BBox;

    use super::*;

    fn person(height: f32) -> Detection {
        Detection {
            bbox: BBox::new(10.0, 10.0, 10.0 + height / 3.0, 10.0 + height),
            score: 0.9,
            class_id: 0,
            kind: Kind::Pedestrian,
        }
    }

    #[test]
    fn faces_are_looked_for_only_near_the_camera() {
        assert!(!could_show_a_face(&[], 40.0));
        assert!(!could_show_a_face(&[person(120.0), person(159.0)], 40.0));
        assert!(could_show_a_face(&[person(120.0), person(160.0)], 40.0));
        let mut car = person(400.0);
        car.kind = Kind::Vehicle;
        assert!(!could_show_a_face(&[car], 40.0));
    }
}
