//! Every model of the manifest run from its session's tensor arena, under
//! the daemon's global allocator: the same outputs, bit for bit, as the
//! first run (which tract makes on malloc, while the arena records it),
//! and, once the plan has settled, every run served whole from it, a later
//! session's included.

mod common;

use std::fs::File;

use ndarray_npy::ReadNpyExt;
use tract_onnx::prelude::tract_ndarray::ArrayD;
use wayside_arena::Replaying;
use wayside_vision::runtime::{self, Model};

#[global_allocator]
static ALLOCATOR: Replaying = Replaying;

#[test]
fn every_model_gives_the_same_outputs_from_its_arena() {
    let mut report = Vec::new();
    for entry in &common::manifest().model {
        let path = common::models_dir()
            .join("crosscheck")
            .join(&entry.id)
            .join("input.npy");
        let input =
            ArrayD::<f32>::read_npy(File::open(&path).expect("run scripts/setup-models.sh"))
                .unwrap();
        let model = Model::load(&entry.path(), &[input.shape().to_vec()]).unwrap();
        let mut session = model.session().unwrap();
        let (shape, data) = (input.shape().to_vec(), input.as_slice().unwrap());
        let run = |session: &mut runtime::Session| -> Vec<Vec<f32>> {
            let outputs = session.run_f32(&shape, data).unwrap();
            outputs
                .iter()
                .map(|t| runtime::f32s(t).unwrap().to_vec())
                .collect()
        };
        let recorded = run(&mut session);
        // tract-linalg allocates its per-thread scratch buffers during a
        // thread's first inference: that session's second run strays from
        // the first's plan and is recorded again. From the fourth on the
        // plan has settled.
        let mut settled = None;
        for i in 2..=6 {
            if i == 4 {
                settled = Some(session.arena_stats());
            }
            assert!(
                run(&mut session) == recorded,
                "{}: run {i} differs",
                entry.id
            );
        }
        let settled = settled.expect("taken before run 4");
        let stats = session.arena_stats();
        report.push(format!("{:<22} {stats:?}", entry.id));
        assert!(stats.recordings <= 2, "{}: {stats:?}", entry.id);
        assert_eq!(
            stats.fell_back, settled.fell_back,
            "{}: {stats:?}",
            entry.id
        );
        let served = stats.served - settled.served;
        assert!(
            served >= 3 && served.is_multiple_of(3),
            "{}: {stats:?}",
            entry.id
        );
        assert!(stats.buffer_bytes > 0, "{}: {stats:?}", entry.id);
        // A session made once another is dropped (one per request, or per
        // plate) takes over its arena and replays from its first run.
        drop(session);
        let mut next = model.session().unwrap();
        assert!(
            run(&mut next) == recorded,
            "{}: next session differs",
            entry.id
        );
        let after = next.arena_stats();
        assert_eq!(
            after.recordings, stats.recordings,
            "{}: {after:?}",
            entry.id
        );
        assert_eq!(after.fell_back, stats.fell_back, "{}: {after:?}", entry.id);
        assert_eq!(
            after.served - stats.served,
            served / 3,
            "{}: {after:?}",
            entry.id
        );
    }
    println!("{}", report.join("\n"));
}
