//! Every model of the manifest run from its session's tensor arena, under
//! the daemon's global allocator: the same outputs, bit for bit, as the
//! first run (which tract makes on malloc, while the arena records it),
//! and, once the plan has settled, every run served whole from it, a later
//! session's included.

mod common;

use std::fs::File;
use std::path::Path;

use ndarray_npy::ReadNpyExt;
use tract_onnx::prelude::tract_ndarray::{ArrayD, s};
use wayside_arena::{Replaying, Stats};
use wayside_vision::runtime::{self, Model};

#[global_allocator]
static ALLOCATOR: Replaying = Replaying;

#[test]
fn every_model_gives_the_same_outputs_from_its_arena() {
    let mut report = Vec::new();
    for entry in &common::manifest().model {
        let input = crosscheck_input(&entry.id);
        report.push(check(&entry.id, &entry.path(), input.clone()));
        // A model whose padding is trimmed runs a 16:9 frame at a smaller
        // input: another plan, whose first run makes allocations the full
        // input's does not (the detector's first run at 416x288 one more).
        if entry.input.trim_padding.is_some() {
            let fit = entry.input.letterbox(1280, 720);
            let (w, h) = (fit.input_width as usize, fit.input_height as usize);
            let cropped = input.slice(s![.., .., ..h, ..w]).to_owned().into_dyn();
            report.push(check(&entry.id, &entry.path(), cropped));
        }
    }
    println!("{}", report.join("\n"));
}

/// A video job's detection workers, one per core and each a fresh thread,
/// leave their arenas to the next job's: none of those records again.
#[test]
fn a_jobs_workers_leave_their_arenas_to_the_next_jobs() {
    let entry = common::manifest()
        .model
        .into_iter()
        .find(|m| m.id == "detector")
        .expect("the manifest has the detector");
    let input = crosscheck_input(&entry.id);
    let (shape, data) = (input.shape(), input.as_slice().unwrap());
    let model = Model::load(&entry.path(), &[shape.to_vec()]).unwrap();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Each worker's arena before and after its runs.
    let job = || -> Vec<(Stats, Stats)> {
        let sessions: Vec<_> = (0..workers).map(|_| model.session().unwrap()).collect();
        std::thread::scope(|s| {
            let running: Vec<_> = sessions
                .into_iter()
                .map(|mut session| {
                    s.spawn(move || {
                        let before = session.arena_stats();
                        for _ in 0..3 {
                            session.run_f32(shape, data).unwrap();
                        }
                        (before, session.arena_stats())
                    })
                })
                .collect();
            running.into_iter().map(|w| w.join().unwrap()).collect()
        })
    };
    for (before, after) in job() {
        assert_eq!((before.runs, after.recordings), (0, 1), "{after:?}");
    }
    for (before, after) in job() {
        assert_eq!(before.runs, 3, "a fresh arena: {before:?}");
        assert!(before.served > 0, "{before:?}");
        assert_eq!(after.recordings, 1, "{after:?}");
        assert_eq!(
            after.served - before.served,
            3 * (before.served / 2),
            "{after:?}"
        );
    }
}

fn crosscheck_input(id: &str) -> ArrayD<f32> {
    let path = common::models_dir()
        .join("crosscheck")
        .join(id)
        .join("input.npy");
    ArrayD::<f32>::read_npy(File::open(&path).expect("run scripts/setup-models.sh")).unwrap()
}

/// Six runs of one session on a thread of its own, then one of the next
/// session: the same outputs every time, and every run after the first
/// served whole from the plan of that first one.
fn check(id: &str, path: &Path, input: ArrayD<f32>) -> String {
    let (shape, data) = (input.shape().to_vec(), input.as_slice().unwrap());
    let model = Model::load(path, std::slice::from_ref(&shape)).unwrap();
    let run = |session: &mut runtime::Session| -> Vec<Vec<f32>> {
        let outputs = session.run_f32(&shape, data).unwrap();
        outputs
            .iter()
            .map(|t| runtime::f32s(t).unwrap().to_vec())
            .collect()
    };
    // A fresh thread, as a detection worker is: tract grows a thread's
    // scratch during its first inference, which the plan the arena makes
    // of that run must allow for.
    let worker = || {
        let mut session = model.session().unwrap();
        let recorded = run(&mut session);
        for i in 2..=6 {
            assert!(
                run(&mut session) == recorded,
                "{id} {shape:?}: run {i} differs"
            );
        }
        let stats = session.arena_stats();
        let line = format!("{id:<22} {:<18} {stats:?}", format!("{shape:?}"));
        assert_eq!(stats.recordings, 1, "{line}");
        assert_eq!(stats.fell_back, 0, "{line}");
        let per_run = stats.served / 5;
        assert!(per_run >= 1 && stats.served == 5 * per_run, "{line}");
        assert!(stats.buffer_bytes > 0, "{line}");
        // A session made on the thread once another is dropped (one per
        // plate) takes over its arena and replays from its first run.
        drop(session);
        let mut next = model.session().unwrap();
        assert!(run(&mut next) == recorded, "{id}: next session differs");
        let after = next.arena_stats();
        assert_eq!(after.recordings, stats.recordings, "{id}: {after:?}");
        assert_eq!(after.fell_back, stats.fell_back, "{id}: {after:?}");
        assert_eq!(after.served - stats.served, per_run, "{id}: {after:?}");
        line
    };
    std::thread::scope(|s| s.spawn(worker).join().unwrap())
}
