//! The plate stage of a job or camera: on tracked frames, read the plates
//! of tracked vehicles and vote each vehicle's readings into one plate
//! (docs/PLATES.md) as soon as no more reading will come: the vote has
//! settled, the vehicle has had its `max_attempts`, or its track ended. A
//! camera thus reports a parked car once, when it is read, not when it
//! leaves. What leaves is a [`PlateSighting`]: the plate, its
//! confidence, a JPEG of the vehicle and the time of that picture.
//!
//! Reading a plate costs about as much as detecting a frame's objects, so
//! the stage reads at most `reads_per_frame` vehicles a frame: the one read
//! least recently first, none whose vote has settled, and none read
//! `max_attempts` times already (a parked van without a readable plate
//! would otherwise cost a read on every frame for as long as it stands).

use std::collections::HashMap;

use image::RgbImage;
use wayside_vision::Kind;
use wayside_vision::plate::{PlateEngine, PlateSession, PlateVote};
use wayside_vision::track::{TrackSnapshot, TrackState};

use super::PipelineError;
use crate::config::PlatesConfig;
use crate::decode::DecodedFrame;

/// One vehicle's voted plate, ready for the data API.
#[derive(Debug, Clone)]
pub struct PlateSighting {
    /// The vehicle track's id within its job or camera.
    pub track_id: u64,
    /// Video time of the frame the picture was taken from.
    pub t_ms: u64,
    /// Normalised plate text, e.g. `京A12345`.
    pub text: String,
    /// The vote's confidence, 0..1.
    pub confidence: f32,
    /// JPEG of the vehicle.
    pub jpeg: Vec<u8>,
}

/// A ballot's payload: the frame is gone by the time the vote ends, so the
/// vehicle is cut out when its plate is read.
struct Picture {
    t_ms: u64,
    image: RgbImage,
}

struct Vehicle {
    /// None once the vehicle's plate has been reported.
    vote: Option<PlateVote<Picture>>,
    last_read_ms: u64,
    attempts: u32,
}

pub struct PlateStage<'a> {
    session: PlateSession<'a>,
    engine: &'a PlateEngine,
    vehicles: HashMap<u64, Vehicle>,
    config: &'a PlatesConfig,
    jpeg_quality: u8,
}

impl<'a> PlateStage<'a> {
    pub fn new(
        engine: &'a PlateEngine,
        config: &'a PlatesConfig,
        jpeg_quality: u8,
    ) -> Result<Self, PipelineError> {
        Ok(Self {
            session: engine.session(),
            engine,
            vehicles: HashMap::new(),
            config,
            jpeg_quality,
        })
    }

    /// One tracked frame with the object tracker's tracks. Returns the plates
    /// of vehicles read to the end in this frame or whose tracks ended.
    pub fn observe(
        &mut self,
        frame: &DecodedFrame,
        t_ms: u64,
        tracks: &[TrackSnapshot],
    ) -> Result<Vec<PlateSighting>, PipelineError> {
        let mut out = Vec::new();
        for track in due(&self.vehicles, tracks, self.config) {
            let reads = self
                .session
                .read_region(&frame.rgb(), track.bbox, &self.config.region)?;
            let vehicle = self.vehicles.entry(track.id).or_insert_with(|| Vehicle {
                vote: Some(PlateVote::new(&self.config.vote, self.engine.grammar())),
                last_read_ms: t_ms,
                attempts: 0,
            });
            vehicle.last_read_ms = t_ms;
            vehicle.attempts += 1;
            let Some(vote) = vehicle.vote.as_mut() else {
                continue;
            };
            if let Some(read) = reads.into_iter().find(|r| r.valid()) {
                let image = super::crop(&frame.rgb(), &track.bbox, self.config.picture_margin);
                vote.offer(read.reading, read.format, Picture { t_ms, image });
            }
            let read_out = vote.settled() || vehicle.attempts >= self.config.max_attempts;
            let done = if read_out { vehicle.vote.take() } else { None };
            out.extend(self.sighting(track.id, done)?);
        }
        let ended: Vec<u64> = self
            .vehicles
            .keys()
            .filter(|id| !tracks.iter().any(|t| t.id == **id))
            .copied()
            .collect();
        for id in ended {
            let vote = self.vehicles.remove(&id).and_then(|v| v.vote);
            out.extend(self.sighting(id, vote)?);
        }
        Ok(out)
    }

    /// The plates of the vehicles still in view when the stream ends.
    pub fn finish(mut self) -> Result<Vec<PlateSighting>, PipelineError> {
        let mut out = Vec::new();
        for (id, vehicle) in std::mem::take(&mut self.vehicles) {
            out.extend(self.sighting(id, vehicle.vote)?);
        }
        Ok(out)
    }

    /// Vehicle `id`'s vote counted, if it still had one and any ballot.
    fn sighting(
        &self,
        id: u64,
        vote: Option<PlateVote<Picture>>,
    ) -> Result<Option<PlateSighting>, PipelineError> {
        let Some(voted) = vote.and_then(PlateVote::finish) else {
            return Ok(None);
        };
        Ok(Some(PlateSighting {
            track_id: id,
            t_ms: voted.payload.t_ms,
            text: voted.text,
            confidence: voted.confidence,
            jpeg: super::encode_jpeg(&voted.payload.image, self.jpeg_quality)?,
        }))
    }
}

/// The vehicles to read in this frame: confirmed vehicle tracks seen in
/// this very frame (a predicted box may have left the vehicle), big enough
/// to show a readable plate, not settled nor given up on; least recently
/// read first, never read before all, then the biggest.
fn due<'t>(
    vehicles: &HashMap<u64, Vehicle>,
    tracks: &'t [TrackSnapshot],
    config: &PlatesConfig,
) -> Vec<&'t TrackSnapshot> {
    let min_side = config.region.min_side_px;
    let mut due: Vec<(Option<u64>, &TrackSnapshot)> = tracks
        .iter()
        .filter(|t| {
            t.state == TrackState::Confirmed
                && t.kind == Kind::Vehicle
                && t.detection.is_some()
                && t.bbox.width().min(t.bbox.height()) >= min_side
        })
        .filter_map(|t| match vehicles.get(&t.id) {
            None => Some((None, t)),
            Some(v) if v.vote.is_none() || v.attempts >= config.max_attempts => None,
            Some(v) => Some((Some(v.last_read_ms), t)),
        })
        .collect();
    due.sort_by_key(|(last, t)| (*last, std::cmp::Reverse(t.bbox.area() as u64)));
    due.into_iter()
        .take(config.reads_per_frame)
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use wayside_vision::BBox;
    use wayside_vision::plate::GrammarConfig;

    use super::*;

    fn track(id: u64, side: f32) -> TrackSnapshot {
        let bbox = BBox::new(0.0, 0.0, side, side);
        TrackSnapshot {
            id,
            state: TrackState::Confirmed,
            bbox,
            kind: Kind::Vehicle,
            class_id: 2,
            score: 0.9,
            first_bbox: bbox,
            first_seen_ms: 0,
            last_seen_ms: 0,
            age_ms: 0,
            hits: 3,
            detection: Some(0),
        }
    }

    fn read(config: &PlatesConfig, last_read_ms: u64, attempts: u32) -> Vehicle {
        Vehicle {
            vote: Some(PlateVote::new(&config.vote, &GrammarConfig::default())),
            last_read_ms,
            attempts,
        }
    }

    fn ids(due: Vec<&TrackSnapshot>) -> Vec<u64> {
        due.iter().map(|t| t.id).collect()
    }

    #[test]
    fn vehicles_take_turns_and_parked_ones_are_given_up() {
        let config = PlatesConfig {
            reads_per_frame: 2,
            max_attempts: 3,
            ..PlatesConfig::default()
        };
        let mut tracks = vec![track(1, 200.0), track(2, 100.0), track(3, 300.0)];
        let mut vehicles = HashMap::new();
        // Never read: all, biggest first, two a frame.
        assert_eq!(ids(due(&vehicles, &tracks, &config)), [3, 1]);
        // 3 and 1 were read at 100 ms: 2 has waited longest.
        vehicles.insert(3, read(&config, 100, 1));
        vehicles.insert(1, read(&config, 100, 1));
        assert_eq!(ids(due(&vehicles, &tracks, &config)), [2, 3]);
        // 3 has had its attempts; 1 read at 200, 2 at 150.
        vehicles.insert(3, read(&config, 100, 3));
        vehicles.insert(1, read(&config, 200, 2));
        vehicles.insert(2, read(&config, 150, 1));
        assert_eq!(ids(due(&vehicles, &tracks, &config)), [2, 1]);
        // Too small, only predicted, or not a vehicle: not read.
        tracks[0].bbox = BBox::new(0.0, 0.0, 400.0, 40.0);
        tracks[1].detection = None;
        assert!(due(&vehicles, &tracks, &config).is_empty());
        let mut person = track(4, 200.0);
        person.kind = Kind::Pedestrian;
        assert!(due(&HashMap::new(), &[person], &config).is_empty());
    }
}
