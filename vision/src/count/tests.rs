//! Tracker + counter on synthetic scenes, the way the pipeline drives them.

use proptest::prelude::*;

use super::*;
use crate::BBox;
use crate::track::{Tracker, TrackerConfig};

const FRAME_MS: u64 = 100;

fn person(cx: f32, cy: f32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, 40.0, 80.0),
        score: 0.9,
        class_id: 0,
        kind: Kind::Pedestrian,
    }
}

fn bicycle(cx: f32, cy: f32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, 70.0, 60.0),
        score: 0.9,
        class_id: 1,
        kind: Kind::Vehicle,
    }
}

fn car(cx: f32, cy: f32) -> Detection {
    Detection {
        bbox: BBox::from_cxcywh(cx, cy, 120.0, 80.0),
        score: 0.9,
        class_id: 2,
        kind: Kind::Vehicle,
    }
}

/// Runs `scene(t_ms)` at 10 fps for `duration_ms`, sampling every
/// `interval_ms`, and returns the report and every pass event.
fn run(
    duration_ms: u64,
    interval_ms: u64,
    line: Option<&str>,
    scene: impl Fn(u64) -> Vec<Detection>,
) -> (CountsReport, Vec<PassEvent>) {
    let mut tracker = Tracker::new(TrackerConfig::default()).expect("valid");
    let mut counter = Counter::new(
        CountConfig::default(),
        ResolvedClassMap::default(),
        interval_ms,
    )
    .expect("valid");
    if let Some(l) = line {
        counter = counter.with_line(
            l.parse::<CountingLine>()
                .expect("valid line")
                .to_pixels(1000, 600),
        );
    }
    let mut events = Vec::new();
    for t in (0..duration_ms).step_by(FRAME_MS as usize) {
        let dets = scene(t);
        let tracks = tracker.update(&dets, t);
        events.extend(counter.observe(t, &tracks));
        if t.is_multiple_of(interval_ms) {
            counter.sample(&dets);
        }
    }
    (counter.report(), events)
}

fn same_lengths(r: &CountsReport) {
    let n = r.pedestrian_counts.len();
    assert_eq!(r.vehicle_counts.len(), n);
    assert_eq!(r.pedestrians_per_interval.len(), n);
    assert_eq!(r.vehicles_per_interval.len(), n);
    assert!(r.per_class.values().all(|v| v.len() == n));
    if let Some(l) = &r.line_crossings {
        assert_eq!((l.in_per_interval.len(), l.out_per_interval.len()), (n, n));
    }
}

#[test]
fn a_parked_car_is_counted_per_frame_but_never_passes() {
    let (r, events) = run(10_000, 1000, None, |t| {
        // A few pixels of detector wobble.
        let wobble = if (t / FRAME_MS).is_multiple_of(2) {
            3.0
        } else {
            -3.0
        };
        vec![car(500.0 + wobble, 300.0)]
    });
    same_lengths(&r);
    assert_eq!(r.vehicle_counts, vec![1; 10]);
    assert_eq!(r.vehicles_per_interval, vec![0; 10]);
    assert!(events.is_empty());
}

#[test]
fn a_walker_passes_once_in_the_right_window() {
    // Appears at 2 s, walks right at 100 px/s (80 px box height): one box
    // height after ~0.8 s, so it passes in window 2 = [2000, 3000).
    let (r, events) = run(6000, 1000, None, |t| {
        if t < 2000 {
            vec![]
        } else {
            vec![person(100.0 + 0.1 * (t - 2000) as f32, 300.0)]
        }
    });
    same_lengths(&r);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(r.pedestrians_per_interval, vec![0, 0, 1, 0, 0, 0]);
    assert_eq!(r.pedestrian_counts, vec![0, 0, 1, 1, 1, 1]);
    assert_eq!(r.per_class["person"], vec![0, 0, 1, 0, 0, 0]);
    assert!(r.line_crossings.is_none());
}

#[test]
fn line_crossings_both_ways_split_by_direction() {
    // Line across the middle (y = 300 px). One walker goes down through it,
    // one comes up, one walks beside the segment's end and does not cross.
    let (r, events) = run(6000, 1000, Some("0.1,0.5,0.6,0.5"), |t| {
        let s = t as f32 / 1000.0;
        vec![
            person(200.0, 110.0 + 60.0 * s),
            person(450.0, 530.0 - 60.0 * s),
            person(850.0, 110.0 + 60.0 * s),
        ]
    });
    same_lengths(&r);
    assert_eq!(events.len(), 2, "{events:?}");
    let line = r.line_crossings.expect("line configured");
    // Feet of the first start at y = 150 and leave the 8 px dead band below
    // the line (y > 308) at about 2.6 s.
    assert_eq!(line.in_per_interval, vec![0, 0, 1, 0, 0, 0]);
    // Feet of the second start at 570 and clear it (y < 292) at about 4.6 s.
    assert_eq!(line.out_per_interval, vec![0, 0, 0, 0, 1, 0]);
    assert_eq!(r.pedestrians_per_interval.iter().sum::<u32>(), 2);
}

#[test]
fn jitter_across_the_line_counts_once() {
    // Someone pacing to and fro across the line for 10 s.
    let (r, events) = run(10_000, 1000, Some("0,0.5,1,0.5"), |t| {
        let phase = (t / 400) % 2;
        let y = if phase == 0 { 240.0 } else { 280.0 };
        vec![person(500.0 + 0.01 * t as f32, y)]
    });
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(r.pedestrians_per_interval.iter().sum::<u32>(), 1);
}

#[test]
fn a_rider_on_a_bicycle_is_a_vehicle_not_a_pedestrian() {
    let (r, events) = run(5000, 1000, None, |t| {
        let x = 100.0 + 0.1 * t as f32;
        // The rider's box sticks out above the bicycle's: 2/3 inside.
        let rider = Detection {
            bbox: BBox::new(x - 15.0, 200.0, x + 15.0, 290.0),
            ..person(0.0, 0.0)
        };
        vec![rider, bicycle(x, 260.0)]
    });
    same_lengths(&r);
    assert_eq!(r.pedestrian_counts, vec![0; 5]);
    assert_eq!(r.vehicle_counts, vec![1; 5]);
    assert_eq!(r.pedestrians_per_interval.iter().sum::<u32>(), 0);
    assert_eq!(r.vehicles_per_interval.iter().sum::<u32>(), 1);
    assert_eq!(r.per_class["bicycle"].iter().sum::<u32>(), 1);
    assert_eq!(events.len(), 1);
}

#[test]
fn config_validation_names_the_field() {
    let c = CountConfig {
        min_travel: 0.0,
        ..CountConfig::default()
    };
    assert_eq!(
        c.validate(),
        Err(CountError::Config {
            field: "min_travel",
            reason: "must be a positive number"
        })
    );
    let c = CountConfig {
        rider_min_cover: f32::NAN,
        ..CountConfig::default()
    };
    assert!(matches!(
        c.validate(),
        Err(CountError::Config {
            field: "rider_min_cover",
            ..
        })
    ));
    let parsed: CountConfig = serde_json::from_str(r#"{"min_travel": 2}"#).expect("partial config");
    assert_eq!(parsed.min_travel, 2.0);
    assert!(serde_json::from_str::<CountConfig>(r#"{"travel": 2}"#).is_err());
    let err = Counter::new(CountConfig::default(), ResolvedClassMap::default(), 0).unwrap_err();
    assert_eq!(err, CountError::ZeroInterval);
}

proptest! {
    /// An object wobbling in place by up to a tenth of its height never
    /// passes, however long it stays.
    #[test]
    fn stationary_objects_never_pass(
        wobble in proptest::collection::vec((-8.0f32..8.0, -8.0f32..8.0), 20..120),
    ) {
        let (r, events) = run(wobble.len() as u64 * FRAME_MS, 500, None, |t| {
            let (dx, dy) = wobble[(t / FRAME_MS) as usize];
            vec![person(400.0 + dx, 300.0 + dy)]
        });
        prop_assert!(events.is_empty());
        prop_assert_eq!(r.pedestrians_per_interval.iter().sum::<u32>(), 0);
    }

    /// Walkers moving in any direction fast enough to pass are each counted
    /// exactly once in total, and the arrays stay the same length.
    #[test]
    fn every_mover_is_counted_once(
        walkers in proptest::collection::vec((-10.0f32..10.0, 40.0f32..90.0), 1..4),
        interval_frames in 2u64..30,
    ) {
        // Lanes 250 px apart and little sideways drift: walkers never meet.
        let (r, events) = run(8000, interval_frames * FRAME_MS, None, |t| {
            let s = t as f32 / 1000.0;
            walkers
                .iter()
                .enumerate()
                .map(|(i, &(vy, vx))| person(150.0 + vx * s, 100.0 + 250.0 * i as f32 + vy * s))
                .collect()
        });
        same_lengths(&r);
        prop_assert_eq!(events.len(), walkers.len());
        prop_assert_eq!(r.pedestrians_per_interval.iter().sum::<u32>() as usize, walkers.len());
        let mut ids: Vec<u64> = events.iter().map(|e| e.track_id).collect();
        ids.dedup();
        prop_assert_eq!(ids.len(), walkers.len());
    }
}
