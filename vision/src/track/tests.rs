//! Synthetic-trajectory tests of the tracker.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::Kind;

fn person(cx: f32, cy: f32, score: f32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, 40.0, 80.0),
        score,
        class_id: 0,
        kind: Kind::Pedestrian,
    }
}

fn car(cx: f32, cy: f32, score: f32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, 120.0, 80.0),
        score,
        class_id: 2,
        kind: Kind::Vehicle,
    }
}

fn tracker() -> Tracker {
    Tracker::new(TrackerConfig::default()).expect("default config is valid")
}

/// Id of the track matched to detection `index` in this frame.
fn id_of(tracks: &[TrackSnapshot], index: usize) -> Option<u64> {
    tracks
        .iter()
        .find(|t| t.detection == Some(index))
        .map(|t| t.id)
}

/// Small deterministic noise in [-amp, amp] without a random-number crate.
fn noise(seed: &mut u64, amp: f32) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32 * 2.0 - 1.0) * amp
}

#[test]
fn first_frame_confirms_later_tracks_wait_for_min_hits() {
    let mut tr = tracker();
    let out = tr.update(&[person(100.0, 100.0, 0.9)], 0);
    assert_eq!(out[0].state, TrackState::Confirmed);
    let mut states = Vec::new();
    for f in 1..=3u64 {
        let out = tr.update(
            &[person(100.0, 100.0, 0.9), person(400.0, 100.0, 0.9)],
            f * 100,
        );
        let newcomer = out
            .iter()
            .find(|t| t.detection == Some(1))
            .expect("newcomer tracked");
        states.push(newcomer.state);
    }
    assert_eq!(
        states,
        [
            TrackState::Tentative,
            TrackState::Tentative,
            TrackState::Confirmed
        ]
    );
}

#[test]
fn tentative_track_is_dropped_on_first_miss() {
    let mut tr = tracker();
    tr.update(&[], 0);
    let out = tr.update(&[person(100.0, 100.0, 0.9)], 100);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].state, TrackState::Tentative);
    assert!(tr.update(&[], 200).is_empty());
}

#[test]
fn two_objects_crossing_paths_keep_their_ids() {
    let mut tr = tracker();
    let (mut a_id, mut b_id) = (None, None);
    for f in 0..40u64 {
        let x = 20.0 * f as f32;
        // A walks right, B walks left, their boxes overlap fully mid-way.
        let dets = [person(100.0 + x, 200.0, 0.9), person(900.0 - x, 210.0, 0.9)];
        let out = tr.update(&dets, f * 100);
        let (a, b) = (id_of(&out, 0), id_of(&out, 1));
        assert!(a.is_some() && b.is_some(), "frame {f}: both matched");
        assert_ne!(a, b);
        if f == 0 {
            (a_id, b_id) = (a, b);
        }
        assert_eq!((a, b), (a_id, b_id), "frame {f}: ids swapped");
    }
}

#[test]
fn short_occlusion_keeps_the_id() {
    let mut tr = tracker();
    let mut id = None;
    for f in 0..30u64 {
        let dets = if (10..15).contains(&f) {
            vec![]
        } else {
            vec![person(100.0 + 15.0 * f as f32, 300.0, 0.9)]
        };
        let out = tr.update(&dets, f * 100);
        if (10..15).contains(&f) {
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].state, TrackState::Lost);
        } else {
            let got = id_of(&out, 0);
            assert!(got.is_some(), "frame {f}");
            assert_eq!(*id.get_or_insert(got), got, "frame {f}");
            assert_eq!(out.len(), 1, "frame {f}: no duplicate track");
        }
    }
}

/// A walker who stops behind an occluder: the filter carries the track on
/// at walking pace, so when they step out again 1.4 s later the prediction
/// is far from them. Returns the id before and the ids after, per frame.
fn stopped_walker(config: TrackerConfig) -> (Option<u64>, Vec<Option<u64>>) {
    let mut tr = Tracker::new(config).expect("valid config");
    let (mut id, mut t) = (None, 0);
    for f in 0..10 {
        t = f * 200;
        id = id_of(
            &tr.update(&[person(100.0 + 30.0 * f as f32, 300.0, 0.9)], t),
            0,
        );
    }
    for _ in 0..7 {
        t += 200;
        tr.update(&[], t);
    }
    // Out again near where they were hidden, now walking back.
    let after = (0..5)
        .map(|f| {
            t += 200;
            let out = tr.update(&[person(380.0 - 10.0 * f as f32, 300.0, 0.9)], t);
            assert_eq!(out.len(), 1, "no second track");
            id_of(&out, 0)
        })
        .collect();
    (id, after)
}

#[test]
fn walker_who_stops_while_hidden_keeps_the_id() {
    let (before, after) = stopped_walker(TrackerConfig::default());
    assert!(before.is_some());
    assert!(
        after.iter().all(|&id| id == before),
        "{before:?} then {after:?}"
    );
    // Without recovery the prediction has walked on and a new track starts
    // (tentative at first, so not matched to the old id in any frame).
    let off = TrackerConfig {
        recover_radius: 0.0,
        ..TrackerConfig::default()
    };
    let (before, after) = stopped_walker(off);
    assert!(
        after.iter().all(|&id| id != before),
        "{before:?} then {after:?}"
    );
}

/// Recovery only reaches as far as the gate: someone appearing well away
/// from where a track was lost is somebody else.
#[test]
fn recovery_does_not_take_over_a_distant_newcomer() {
    let mut tr = tracker();
    let mut first = None;
    for f in 0..5 {
        first = id_of(&tr.update(&[person(100.0, 300.0, 0.9)], f * 200), 0);
    }
    tr.update(&[], 1200);
    // 0.4 s lost: gate 0.5 + 0.8 * 0.4 = 0.82 box heights (66 px); 200 px away.
    let out = tr.update(&[person(300.0, 300.0, 0.9)], 1200);
    let lost = out
        .iter()
        .find(|t| Some(t.id) == first)
        .expect("still buffered");
    assert_eq!(lost.state, TrackState::Lost);
    assert!(id_of(&out, 0).is_none_or(|id| Some(id) != first), "{out:?}");
}

#[test]
fn id_persists_over_100_noisy_frames_with_uneven_spacing() {
    let mut tr = tracker();
    let mut seed = 7;
    let mut t = 0u64;
    let mut ids = HashSet::new();
    for f in 0..100 {
        // 5..20 fps jitter: gaps of 50..200 ms, object at 150 px/s.
        t += 50 + (noise(&mut seed, 1.0).abs() * 150.0) as u64;
        let x = 100.0 + 0.15 * t as f32 + noise(&mut seed, 3.0);
        let y = 300.0 + noise(&mut seed, 3.0);
        let out = tr.update(&[person(x, y, 0.8)], t);
        let id = id_of(&out, 0);
        assert!(id.is_some(), "frame {f}");
        ids.extend(id);
    }
    assert_eq!(ids.len(), 1, "ids {ids:?}");
}

#[test]
fn ids_are_never_reused_after_a_track_dies() {
    let mut tr = tracker();
    let first = tr.update(&[person(100.0, 100.0, 0.9)], 0)[0].id;
    // Gone for longer than the buffer: removed.
    let buffer = TrackerConfig::default().track_buffer_ms;
    assert_eq!(tr.update(&[], 500).len(), 1);
    assert!(tr.update(&[], buffer + 200).is_empty());
    let mut seen = vec![first];
    for f in 0..3u64 {
        let out = tr.update(&[person(100.0, 100.0, 0.9)], buffer + 300 + f * 100);
        seen.push(out[0].id);
    }
    assert!(seen[1] > first, "new object, new id: {seen:?}");
    assert!(seen[1..].iter().all(|&id| id == seen[1]));
}

#[test]
fn low_score_detections_keep_a_track_alive() {
    let run = |low_score: f32| {
        let mut tr = tracker();
        let mut last = Vec::new();
        // 0.5 s seen well, then 4 s (longer than the buffer) of `low_score`.
        for f in 0..45u64 {
            let score = if f < 5 { 0.9 } else { low_score };
            last = tr.update(&[person(100.0 + 10.0 * f as f32, 100.0, score)], f * 100);
        }
        last
    };
    // Scores in [low_thresh, track_thresh): matched by stage 2.
    let kept = run(0.3);
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].id, kept[0].state, kept[0].hits),
        (1, TrackState::Confirmed, 45)
    );
    // Below low_thresh the track is lost and, after the buffer, removed.
    assert!(run(0.05).is_empty());
}

#[test]
fn low_score_detections_never_start_tracks() {
    let mut tr = tracker();
    for f in 0..5u64 {
        assert!(tr.update(&[person(100.0, 100.0, 0.4)], f * 100).is_empty());
    }
}

#[test]
fn association_is_class_aware() {
    let mut tr = tracker();
    tr.update(&[person(100.0, 100.0, 0.9)], 0);
    // A car detection where the person was must not continue the person.
    let out = tr.update(&[car(100.0, 100.0, 0.9)], 100);
    let person_track = out
        .iter()
        .find(|t| t.kind == Kind::Pedestrian)
        .expect("still there");
    assert_eq!(person_track.state, TrackState::Lost);
    let car_track = out
        .iter()
        .find(|t| t.kind == Kind::Vehicle)
        .expect("new car track");
    assert_ne!(car_track.id, person_track.id);
}

#[test]
fn class_label_follows_the_majority() {
    let mut tr = tracker();
    let mut out = Vec::new();
    for f in 0..6u64 {
        let mut d = car(300.0, 300.0, 0.9);
        // One frame out of six the detector says truck.
        if f == 3 {
            d.class_id = 7;
        }
        out = tr.update(&[d], f * 100);
    }
    assert_eq!(out[0].class_id, 2);
}

#[test]
fn broken_detections_are_ignored() {
    let mut tr = tracker();
    let bad = [
        Detection {
            bbox: BBox::new(f32::NAN, 0.0, 10.0, 10.0),
            ..person(0.0, 0.0, 0.9)
        },
        Detection {
            bbox: BBox::new(10.0, 10.0, 10.0, 50.0),
            ..person(0.0, 0.0, 0.9)
        },
        Detection {
            score: f32::NAN,
            ..person(50.0, 50.0, 0.9)
        },
    ];
    assert!(tr.update(&bad, 0).is_empty());
}

#[test]
fn config_defaults_unknown_fields_and_validation() {
    let cfg: TrackerConfig = serde_json::from_str(r#"{"min_hits": 2}"#).expect("partial config");
    assert_eq!(
        cfg,
        TrackerConfig {
            min_hits: 2,
            ..TrackerConfig::default()
        }
    );
    assert!(serde_json::from_str::<TrackerConfig>(r#"{"min_hit": 2}"#).is_err());
    let bad = TrackerConfig {
        low_thresh: 0.7,
        ..TrackerConfig::default()
    };
    assert_eq!(bad.validate().unwrap_err().field, "low_thresh");
    let bad = TrackerConfig {
        match_thresh: 1.5,
        ..TrackerConfig::default()
    };
    let err = Tracker::new(bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tracker config: `match_thresh` must be between 0 and 1"
    );
    assert_eq!(
        TrackerConfig {
            min_hits: 0,
            ..TrackerConfig::default()
        }
        .validate()
        .unwrap_err()
        .field,
        "min_hits"
    );
}

proptest! {
    /// One object moving in a straight line, sampled at 5–30 fps with a few
    /// pixels of noise, is one track for its whole life. Speeds are bounded
    /// so a frame moves the box by under half its size: beyond that the
    /// second frame (no velocity learned yet) has no IoU to match on.
    #[test]
    fn straight_mover_keeps_one_id(
        vx in -90.0f32..90.0, vy in -120.0f32..120.0,
        gaps in proptest::collection::vec(33u64..200, 10..60),
        noise_seed in any::<u64>(),
    ) {
        let mut tr = tracker();
        let mut seed = noise_seed;
        let mut t = 0u64;
        let mut ids = HashSet::new();
        for gap in gaps {
            let s = t as f32 / 1000.0;
            let d = person(600.0 + vx * s + noise(&mut seed, 2.0), 400.0 + vy * s + noise(&mut seed, 2.0), 0.9);
            let out = tr.update(&[d], t);
            let confirmed: Vec<u64> = out.iter().filter(|t| t.state != TrackState::Tentative).map(|t| t.id).collect();
            ids.extend(confirmed);
            prop_assert_eq!(out.len(), 1);
            t += gap;
        }
        prop_assert_eq!(ids.len(), 1);
    }

    /// Whatever the detections, live ids are unique, ordered and every id is
    /// larger than any id that died before it was born.
    #[test]
    fn ids_unique_and_increasing(
        frames in proptest::collection::vec(
            proptest::collection::vec((0.0f32..600.0, 0.0f32..400.0, 0.0f32..1.0, any::<bool>()), 0..8),
            1..40,
        ),
    ) {
        let mut tr = tracker();
        let mut max_seen = 0u64;
        let mut previous: HashSet<u64> = HashSet::new();
        for (f, dets) in frames.iter().enumerate() {
            let dets: Vec<Detection> = dets
                .iter()
                .map(|&(x, y, s, is_car)| if is_car { car(x, y, s) } else { person(x, y, s) })
                .collect();
            let out = tr.update(&dets, f as u64 * 100);
            let ids: Vec<u64> = out.iter().map(|t| t.id).collect();
            prop_assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids {:?}", ids);
            for &id in &ids {
                prop_assert!(previous.contains(&id) || id > max_seen, "id {} reused", id);
            }
            max_seen = max_seen.max(ids.iter().copied().max().unwrap_or(0));
            previous = ids.into_iter().collect();
            // A detection is matched to at most one track.
            let matched: Vec<usize> = out.iter().filter_map(|t| t.detection).collect();
            let distinct: HashSet<usize> = matched.iter().copied().collect();
            prop_assert_eq!(matched.len(), distinct.len());
        }
    }
}
