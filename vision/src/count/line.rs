//! Counting lines: a segment drawn across the road; an object counts when the
//! bottom centre of its box (where it touches the ground, so a tall box
//! does not cross early) goes from one side of the segment to the other.
//!
//! Jitter around the line must not count twice, so each track has a
//! committed side that only changes once the point is clearly past the line
//! (more than `hysteresis` box heights away from it), and a track is counted
//! on its first crossing only.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::BBox;

/// A line in frame coordinates, each in `0..=1` (fractions of width and
/// height), as given by the `line` request field or the camera's config.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountingLine {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

/// Why a `"x1,y1,x2,y2"` string is not a counting line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineError {
    #[error("line must be \"x1,y1,x2,y2\", got {0} fields")]
    FieldCount(usize),
    #[error("line field {field} is not a number: {value:?}")]
    NotANumber { field: &'static str, value: String },
    #[error("line field {field} must be between 0 and 1, got {value}")]
    OutOfRange { field: &'static str, value: f32 },
    #[error("line has zero length")]
    Degenerate,
}

const FIELDS: [&str; 4] = ["x1", "y1", "x2", "y2"];

impl FromStr for CountingLine {
    type Err = LineError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(LineError::FieldCount(parts.len()));
        }
        let mut v = [0.0f32; 4];
        for ((slot, part), field) in v.iter_mut().zip(&parts).zip(FIELDS) {
            let value: f32 = part.parse().map_err(|_| LineError::NotANumber {
                field,
                value: (*part).to_string(),
            })?;
            if !(0.0..=1.0).contains(&value) {
                return Err(LineError::OutOfRange { field, value });
            }
            *slot = value;
        }
        let [x1, y1, x2, y2] = v;
        if x1 == x2 && y1 == y2 {
            return Err(LineError::Degenerate);
        }
        Ok(Self { x1, y1, x2, y2 })
    }
}

impl TryFrom<String> for CountingLine {
    type Error = LineError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for CountingLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{},{},{}", self.x1, self.y1, self.x2, self.y2)
    }
}

impl From<CountingLine> for String {
    fn from(line: CountingLine) -> Self {
        line.to_string()
    }
}

impl CountingLine {
    /// The line in pixels of a `width` × `height` frame.
    pub fn to_pixels(&self, width: u32, height: u32) -> PixelLine {
        let (w, h) = (width as f32, height as f32);
        PixelLine {
            a: (self.x1 * w, self.y1 * h),
            b: (self.x2 * w, self.y2 * h),
        }
    }
}

/// A counting line in source-frame pixels, from `a` to `b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PixelLine {
    pub a: (f32, f32),
    pub b: (f32, f32),
}

/// Which way an object crossed. `In` is from the left of the direction
/// `a → b` to its right as seen in the image (y pointing down): for a line
/// drawn left to right, `In` is moving down the frame, usually towards the
/// camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    In,
    Out,
}

impl PixelLine {
    fn length(&self) -> f32 {
        (self.b.0 - self.a.0).hypot(self.b.1 - self.a.1)
    }

    /// Signed distance of `p` from the infinite line, positive on the right.
    fn signed_distance(&self, p: (f32, f32)) -> f32 {
        let (dx, dy) = (self.b.0 - self.a.0, self.b.1 - self.a.1);
        (dx * (p.1 - self.a.1) - dy * (p.0 - self.a.0)) / self.length()
    }

    /// Position of `p`'s projection along the segment: 0 at `a`, 1 at `b`.
    fn along(&self, p: (f32, f32)) -> f32 {
        let (dx, dy) = (self.b.0 - self.a.0, self.b.1 - self.a.1);
        ((p.0 - self.a.0) * dx + (p.1 - self.a.1) * dy) / (dx * dx + dy * dy)
    }
}

/// The point of a box that crosses lines: its bottom centre.
pub fn reference_point(bbox: &BBox) -> (f32, f32) {
    ((bbox.x1 + bbox.x2) / 2.0, bbox.y2)
}

/// Per-track crossing state.
#[derive(Debug, Clone, Default)]
pub struct LineTrack {
    /// Side the track was last clearly on (`true` = right), with the point
    /// where it was last seen there.
    committed: Option<(bool, (f32, f32))>,
    crossed: bool,
}

impl LineTrack {
    /// Feeds the track's box in one frame; returns the direction on the
    /// track's first crossing of the segment and `None` otherwise.
    pub fn observe(&mut self, line: &PixelLine, bbox: &BBox, hysteresis: f32) -> Option<Direction> {
        let p = reference_point(bbox);
        let d = line.signed_distance(p);
        if !d.is_finite() || d.abs() <= hysteresis * bbox.height() {
            return None;
        }
        let right = d > 0.0;
        let previous = self.committed.replace((right, p));
        let (was_right, from) = previous?;
        if was_right == right || self.crossed {
            return None;
        }
        // Where the path from the last committed point to here meets the
        // line: it must be on the segment, not on its extension.
        let d0 = line.signed_distance(from);
        let t = d0 / (d0 - d);
        let hit = (from.0 + (p.0 - from.0) * t, from.1 + (p.1 - from.1) * t);
        if !(0.0..=1.0).contains(&line.along(hit)) {
            return None;
        }
        self.crossed = true;
        Some(if right { Direction::In } else { Direction::Out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> PixelLine {
        // Horizontal line across the middle of a 1000 × 600 frame, drawn
        // left to right, from x = 100 to x = 900.
        "0.1,0.5,0.9,0.5"
            .parse::<CountingLine>()
            .expect("valid")
            .to_pixels(1000, 600)
    }

    /// A 40 × 80 box whose bottom centre is at (x, y).
    fn feet_at(x: f32, y: f32) -> BBox {
        BBox::new(x - 20.0, y - 80.0, x + 20.0, y)
    }

    #[test]
    fn parses_and_rejects() {
        let l: CountingLine = " 0, 0.5 ,1,0.5".parse().expect("spaces are fine");
        assert_eq!(
            l,
            CountingLine {
                x1: 0.0,
                y1: 0.5,
                x2: 1.0,
                y2: 0.5
            }
        );
        assert_eq!(
            l.to_pixels(200, 100),
            PixelLine {
                a: (0.0, 50.0),
                b: (200.0, 50.0)
            }
        );
        assert_eq!(
            "0,0,1".parse::<CountingLine>(),
            Err(LineError::FieldCount(3))
        );
        assert_eq!(
            "0,0,1,abc".parse::<CountingLine>(),
            Err(LineError::NotANumber {
                field: "y2",
                value: "abc".into()
            })
        );
        assert_eq!(
            "0,1.5,1,0".parse::<CountingLine>(),
            Err(LineError::OutOfRange {
                field: "y1",
                value: 1.5
            })
        );
        assert!(matches!(
            "NaN,0,1,0".parse::<CountingLine>(),
            Err(LineError::OutOfRange { .. })
        ));
        assert_eq!(
            "0.3,0.3,0.3,0.3".parse::<CountingLine>(),
            Err(LineError::Degenerate)
        );
        assert_eq!("".parse::<CountingLine>(), Err(LineError::FieldCount(1)));
    }

    #[test]
    fn serde_uses_the_string_form() {
        let l: CountingLine = serde_json::from_str("\"0,0.5,1,0.5\"").expect("string form");
        assert_eq!(
            serde_json::to_string(&l).expect("serialises"),
            "\"0,0.5,1,0.5\""
        );
        assert!(serde_json::from_str::<CountingLine>("\"0,2,1,0.5\"").is_err());
    }

    #[test]
    fn crossing_down_is_in_and_up_is_out() {
        let l = line();
        let mut down = LineTrack::default();
        let got: Vec<_> = (0..10)
            .filter_map(|i| down.observe(&l, &feet_at(500.0, 200.0 + 20.0 * i as f32), 0.1))
            .collect();
        assert_eq!(got, vec![Direction::In]);
        let mut up = LineTrack::default();
        let got: Vec<_> = (0..10)
            .filter_map(|i| up.observe(&l, &feet_at(300.0, 400.0 - 20.0 * i as f32), 0.1))
            .collect();
        assert_eq!(got, vec![Direction::Out]);
    }

    #[test]
    fn jitter_across_the_line_counts_once() {
        let l = line();
        let mut t = LineTrack::default();
        let mut events = Vec::new();
        // Standing on the line, wobbling ±5 px (inside the 8 px dead band)...
        for i in 0..20 {
            let y = 300.0 + if i % 2 == 0 { 5.0 } else { -5.0 };
            events.extend(t.observe(&l, &feet_at(500.0, y), 0.1));
        }
        assert!(events.is_empty(), "wobble inside the band: {events:?}");
        // ...then stepping back and forth well across it: only the first
        // crossing (from below, y = 330, to above, y = 270: out) counts.
        for i in 0..20 {
            let y = 300.0 + if i % 2 == 0 { 30.0 } else { -30.0 };
            events.extend(t.observe(&l, &feet_at(500.0, y), 0.1));
        }
        assert_eq!(events, vec![Direction::Out]);
    }

    #[test]
    fn passing_beside_the_segment_does_not_count() {
        let l = line();
        let mut t = LineTrack::default();
        let events: Vec<_> = (0..10)
            .filter_map(|i| t.observe(&l, &feet_at(950.0, 200.0 + 20.0 * i as f32), 0.1))
            .collect();
        assert!(events.is_empty());
    }

    #[test]
    fn a_skipped_frame_still_counts_the_crossing() {
        let l = line();
        let mut t = LineTrack::default();
        assert_eq!(t.observe(&l, &feet_at(500.0, 250.0), 0.1), None);
        // Lost for a while, found far past the line.
        assert_eq!(
            t.observe(&l, &feet_at(520.0, 420.0), 0.1),
            Some(Direction::In)
        );
    }
}
