//! One face per track per period: of all the faces a track shows during a
//! period, keep only the best, and hand it on when the period closes or the
//! track ends. A person walking past a camera for 8 s at 5 frames a second
//! gives one or two faces to store and embed, not forty.
//!
//! The keeper is generic over the payload, so the caller decides what a kept
//! face carries (an aligned crop to embed only once it is kept, a frame crop
//! for the picture, times…). Periods are per track and start at the track's
//! first offered face.
//!
//! ```text
//! per frame: tracks = tracker.update(faces, t)
//!            for each confirmed track with a face that passed the gate:
//!                keeper.offer(track.id, quality.value, t, payload)
//!            keeper.poll(t, |id| id is still a live track) → embed, send
//! at the end: keeper.finish() → embed, send
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeeperConfig {
    /// Length of a track's period: at most one face per track per period.
    pub period_ms: u64,
}

impl Default for KeeperConfig {
    fn default() -> Self {
        // Long enough that a passer-by yields one face, short enough that
        // someone who lingers is seen again.
        Self { period_ms: 10_000 }
    }
}

/// The best face of one track in one period.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept<T> {
    pub track_id: u64,
    /// The [`super::quality::Quality::value`] it was chosen by.
    pub quality: f32,
    /// When this face was seen.
    pub t_ms: u64,
    pub payload: T,
}

#[derive(Debug)]
struct Period<T> {
    opened_ms: u64,
    best: Kept<T>,
}

/// Best face per track per period.
#[derive(Debug)]
pub struct BestPerTrack<T> {
    period_ms: u64,
    open: BTreeMap<u64, Period<T>>,
    /// Periods closed by an offer that came after them, waiting for `poll`.
    closed: Vec<Kept<T>>,
}

impl<T> BestPerTrack<T> {
    pub fn new(config: &KeeperConfig) -> Self {
        Self {
            // A zero period would keep every frame's face: one a period.
            period_ms: config.period_ms.max(1),
            open: BTreeMap::new(),
            closed: Vec::new(),
        }
    }

    /// Offer a face of `track_id` seen at `t_ms`. Returns whether it is now
    /// the best of its track's current period (an equal quality does not
    /// replace the earlier face).
    pub fn offer(&mut self, track_id: u64, quality: f32, t_ms: u64, payload: T) -> bool {
        let kept = Kept {
            track_id,
            quality,
            t_ms,
            payload,
        };
        let Some(period) = self.open.get_mut(&track_id) else {
            self.open.insert(
                track_id,
                Period {
                    opened_ms: t_ms,
                    best: kept,
                },
            );
            return true;
        };
        if t_ms >= period.opened_ms.saturating_add(self.period_ms) {
            let done = std::mem::replace(
                period,
                Period {
                    opened_ms: t_ms,
                    best: kept,
                },
            );
            self.closed.push(done.best);
            true
        } else if quality > period.best.quality {
            period.best = kept;
            true
        } else {
            false
        }
    }

    /// The faces whose period has closed by `now_ms` or whose track `live`
    /// no longer reports, oldest period first within each reason.
    pub fn poll(&mut self, now_ms: u64, live: impl Fn(u64) -> bool) -> Vec<Kept<T>> {
        let period_ms = self.period_ms;
        let due: Vec<u64> = self
            .open
            .iter()
            .filter(|(id, p)| now_ms >= p.opened_ms.saturating_add(period_ms) || !live(**id))
            .map(|(id, _)| *id)
            .collect();
        let mut out = std::mem::take(&mut self.closed);
        out.extend(
            due.into_iter()
                .filter_map(|id| self.open.remove(&id).map(|p| p.best)),
        );
        out
    }

    /// Everything still held: the stream has ended.
    pub fn finish(mut self) -> Vec<Kept<T>> {
        let mut out = std::mem::take(&mut self.closed);
        out.extend(std::mem::take(&mut self.open).into_values().map(|p| p.best));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keeper(period_ms: u64) -> BestPerTrack<&'static str> {
        BestPerTrack::new(&KeeperConfig { period_ms })
    }

    #[test]
    fn keeps_the_best_face_of_a_period_and_emits_it_when_the_period_closes() {
        let mut k = keeper(1000);
        assert!(k.offer(7, 0.5, 0, "a"));
        assert!(k.offer(7, 0.8, 200, "b"));
        assert!(!k.offer(7, 0.6, 400, "c"));
        assert!(!k.offer(7, 0.8, 600, "d"));
        assert!(k.poll(999, |_| true).is_empty());
        let out = k.poll(1000, |_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].payload, out[0].t_ms, out[0].quality),
            ("b", 200, 0.8)
        );
        assert!(k.finish().is_empty());
    }

    #[test]
    fn a_track_that_ends_is_emitted_at_once() {
        let mut k = keeper(10_000);
        k.offer(1, 0.5, 0, "one");
        k.offer(2, 0.5, 0, "two");
        let out = k.poll(100, |id| id == 2);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].track_id, 1);
        let rest = k.finish();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].payload, "two");
    }

    #[test]
    fn a_long_track_gives_one_face_per_period() {
        // 5 fps for 25 s, quality rising and falling: one face per 10 s
        // period (3 periods: 0–10, 10–20, 20–25 s), never one per frame.
        let mut k = keeper(10_000);
        let mut out = Vec::new();
        for i in 0..125u64 {
            let t = i * 200;
            let q = ((i % 17) as f32) / 17.0;
            k.offer(3, q, t, "f");
            out.extend(k.poll(t, |_| true));
        }
        out.extend(k.finish());
        assert_eq!(out.len(), 3, "{out:?}");
        let starts: Vec<u64> = out.iter().map(|k| k.t_ms / 10_000).collect();
        assert_eq!(starts, [0, 1, 2]);
        // Each is the best of its period: i % 17 == 16 occurs in each.
        assert!(out.iter().all(|k| (k.quality - 16.0 / 17.0).abs() < 1e-6));
    }

    #[test]
    fn an_offer_after_the_period_closes_starts_a_new_one() {
        let mut k = keeper(1000);
        k.offer(4, 0.9, 0, "old");
        // No poll in between: the late offer closes the old period itself.
        assert!(k.offer(4, 0.1, 1500, "new"));
        let out = k.poll(1600, |_| true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].payload, "old");
        assert_eq!(k.finish()[0].payload, "new");
    }
}
