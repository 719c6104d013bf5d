//! The arena behind the real global allocator: runs shaped like an
//! inference (layers that read the one before, a skip connection, an
//! output the caller keeps), checked for the bytes they compute, not only
//! for what the arena says it did.

use std::sync::mpsc;
use std::thread;

use wayside_arena::{Arena, MIN_SIZE, Replaying, Stats};

#[global_allocator]
static ALLOCATOR: Replaying = Replaying;

/// A layer: reads all of `input`, writes a new tensor of `size` bytes
/// derived from it.
fn layer(input: &[u8], size: usize, salt: u8) -> Vec<u8> {
    let sum = input
        .iter()
        .fold(salt, |a, &b| a.wrapping_mul(31).wrapping_add(b));
    let mut out = vec![0u8; size];
    for (i, b) in out.iter_mut().enumerate() {
        *b = sum.wrapping_add((i % 251) as u8);
    }
    out
}

/// A small network: a chain of layers of `sizes`, the first layer's output
/// kept as a skip connection and mixed into the last. Small allocations
/// between the layers, as a runtime's bookkeeping makes.
fn inference(sizes: &[usize]) -> Vec<u8> {
    let input = layer(&[7], 300_000, 0);
    let skip = layer(&input, sizes[0], 1);
    let mut x = skip.clone();
    for (i, &size) in sizes.iter().enumerate().skip(1) {
        let notes: Vec<String> = (0..8).map(|n| format!("layer {i} note {n}")).collect();
        x = layer(&x, size, i as u8 ^ notes.len() as u8);
    }
    let mut joined = Vec::with_capacity(skip.len() + x.len());
    joined.extend_from_slice(&skip);
    joined.extend_from_slice(&x);
    layer(&joined, 200_000, 99)
}

const SIZES: [usize; 8] = [
    1 << 20,
    2 << 20,
    512 << 10,
    3 << 20,
    100_000,
    MIN_SIZE,
    1 << 20,
    700_000,
];

/// Large allocations one run makes: the input, the skip, its clone, each
/// later layer, the concatenation and the output.
const LARGE_PER_RUN: u64 = 1 + 1 + 1 + (SIZES.len() as u64 - 1) + 1 + 1;

#[test]
fn runs_after_the_first_are_served_from_a_plan_the_size_of_the_peak() {
    let expected = inference(&SIZES);
    let mut arena = Arena::new();
    for _ in 0..5 {
        assert_eq!(arena.run(|| inference(&SIZES)), expected);
    }
    let stats = arena.stats();
    assert_eq!(stats.runs, 5);
    assert_eq!(stats.recordings, 1);
    assert_eq!(stats.served, 4 * LARGE_PER_RUN, "{stats:?}");
    assert_eq!(stats.fell_back, 0);
    // Alive at once at the peak: the input, the skip, the 3 MiB layer and
    // the one before it, 4.8 MiB; at most alignment more. All the run's
    // allocations, one after another, come to 11.5 MiB.
    let peak = 300_000 + SIZES[0] + SIZES[2] + SIZES[3];
    assert!(stats.buffer_bytes >= peak);
    assert!(stats.buffer_bytes <= peak + 4096, "{stats:?}");
}

#[test]
fn outputs_kept_past_the_next_run_keep_their_bytes() {
    let expected = inference(&SIZES);
    let mut arena = Arena::new();
    arena.run(|| inference(&SIZES));
    let kept: Vec<Vec<u8>> = (0..3).map(|_| arena.run(|| inference(&SIZES))).collect();
    for output in &kept {
        assert_eq!(output, &expected);
    }
    let stats = arena.stats();
    // The outputs' slot and any slot overlapping it went to malloc while an
    // earlier output held it; the rest was served, and nothing re-planned.
    assert!(stats.fell_back >= 2, "{stats:?}");
    assert!(stats.served >= 3 * LARGE_PER_RUN - stats.fell_back);
    assert_eq!(stats.recordings, 1);
    drop(kept);
    let before = arena.stats();
    arena.run(|| inference(&SIZES));
    assert_eq!(arena.stats().served - before.served, LARGE_PER_RUN);
}

#[test]
fn an_output_freed_on_another_thread_goes_back_to_its_arena() {
    let mut arena = Arena::new();
    let (send, receive) = mpsc::channel::<Vec<u8>>();
    let (done, consumed) = mpsc::channel::<u8>();
    let consumer = thread::spawn(move || {
        for output in receive {
            let first = output[0];
            drop(output);
            done.send(first).unwrap();
        }
    });
    for _ in 0..4 {
        send.send(arena.run(|| inference(&SIZES))).unwrap();
        // The consumer has dropped it before the next run, as a bounded
        // queue between pipeline stages would see to.
        consumed.recv().unwrap();
    }
    drop(send);
    consumer.join().unwrap();
    let stats = arena.stats();
    assert_eq!(stats.fell_back, 0, "{stats:?}");
    assert_eq!(stats.served, 3 * LARGE_PER_RUN);
}

#[test]
fn a_run_that_strays_from_the_plan_is_recorded_again() {
    let other: Vec<usize> = SIZES.iter().map(|s| s + 4096).collect();
    let mut arena = Arena::new();
    arena.run(|| inference(&SIZES));
    arena.run(|| inference(&SIZES));
    // Another input shape in the same arena: wrong sizes all the way.
    let strayed = arena.run(|| inference(&other));
    assert_eq!(strayed, inference(&other));
    let after_stray = arena.stats();
    assert!(after_stray.fell_back > 0, "{after_stray:?}");
    // Recorded again, then served again, now at the new sizes.
    for _ in 0..3 {
        assert_eq!(arena.run(|| inference(&other)), strayed);
    }
    let stats = arena.stats();
    assert_eq!(stats.recordings, 2, "{stats:?}");
    assert_eq!(stats.served - after_stray.served, 2 * LARGE_PER_RUN);
}

thread_local! {
    /// Scratch a thread keeps across runs and grows when a run needs more,
    /// as tract-linalg's matrix products do.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Large allocations of [`inference_with_scratch`] but for the scratch:
/// each half makes four more than its layers.
const LARGE_PER_SPLIT_RUN: u64 = SIZES.len() as u64 + 4 + 4;

/// An inference in two halves, with scratch of `sizes` between them.
fn inference_with_scratch(sizes: &[usize]) -> Vec<u8> {
    let first = inference(&SIZES[..4]);
    for &size in sizes {
        SCRATCH.with_borrow_mut(|s| {
            if s.len() < size {
                *s = layer(&first, size, 3);
            }
        });
    }
    let mut out = inference(&SIZES[4..]);
    out[0] ^= SCRATCH.with_borrow(|s| s.first().copied().unwrap_or(0));
    out
}

#[test]
fn scratch_a_thread_grows_in_its_first_run_does_not_make_the_next_stray() {
    // Sizes no tensor of the run has: an allocation the plan lacks takes a
    // slot of its size a few ahead.
    let scratch = [MIN_SIZE + 4096, 2 * MIN_SIZE + 4096];
    let per_run = LARGE_PER_SPLIT_RUN;
    // A fresh thread, as each detection worker is: its first run makes the
    // scratch (twice: it grows), the next ones find it made.
    let (arena, first) = thread::spawn(move || {
        let mut arena = Arena::new();
        let first = arena.run(|| inference_with_scratch(&scratch));
        for _ in 0..4 {
            assert_eq!(arena.run(|| inference_with_scratch(&scratch)), first);
        }
        let stats = arena.stats();
        assert_eq!(stats.recordings, 1, "{stats:?}");
        assert_eq!(stats.fell_back, 0, "{stats:?}");
        assert_eq!(stats.served, 4 * per_run, "{stats:?}");
        (arena, first)
    })
    .join()
    .unwrap();
    // The next job's worker, a fresh thread too, takes the arena over. The
    // plan has no slot for the scratch any more: malloc makes it, not the
    // buffer, whose bytes the thread would otherwise keep.
    thread::spawn(move || {
        let mut arena = arena;
        let before = arena.stats();
        for _ in 0..3 {
            assert_eq!(arena.run(|| inference_with_scratch(&scratch)), first);
        }
        let stats = arena.stats();
        assert_eq!(stats.recordings, 1, "{stats:?}");
        assert_eq!(stats.fell_back - before.fell_back, 2, "{stats:?}");
        assert_eq!(stats.served - before.served, 3 * per_run, "{stats:?}");
    })
    .join()
    .unwrap();
}

#[test]
fn an_allocation_the_plan_lacks_goes_to_malloc_alone() {
    thread::spawn(|| {
        let mut arena = Arena::new();
        let expected = arena.run(|| inference_with_scratch(&[]));
        // Scratch the recorded run did not make, between the two halves.
        // Copied out of the arena: an output kept past the next run keeps
        // its slot from it.
        let with_extra = arena
            .run(|| inference_with_scratch(&[3 * MIN_SIZE]))
            .to_vec();
        assert_eq!(with_extra[1..], expected[1..]);
        let stats = arena.stats();
        assert_eq!(stats.fell_back, 1, "{stats:?}");
        assert_eq!(stats.served, LARGE_PER_SPLIT_RUN, "{stats:?}");
        // Not a reason to record again; the next run, its scratch made,
        // is served whole.
        assert_eq!(
            arena.run(|| inference_with_scratch(&[3 * MIN_SIZE])),
            with_extra
        );
        let next = arena.stats();
        assert_eq!(next.recordings, 1, "{next:?}");
        assert_eq!(next.fell_back, 1, "{next:?}");
        assert_eq!(next.served, 2 * LARGE_PER_SPLIT_RUN, "{next:?}");
    })
    .join()
    .unwrap();
}

#[test]
fn other_threads_and_small_allocations_go_to_malloc() {
    let mut arena = Arena::new();
    for _ in 0..3 {
        arena.run(|| {
            let small = vec![1u8; MIN_SIZE - 1];
            let elsewhere = thread::scope(|s| s.spawn(|| inference(&SIZES)).join().unwrap());
            assert_eq!(small.len() + elsewhere.len(), MIN_SIZE - 1 + 200_000);
        });
    }
    // Nothing large on the arena's thread: nothing to plan.
    assert_eq!(
        arena.stats(),
        Stats {
            runs: 3,
            recordings: 1,
            ..Stats::default()
        }
    );
}

#[test]
fn a_run_that_panics_leaves_the_thread_on_malloc() {
    let mut arena = Arena::new();
    arena.run(|| inference(&SIZES));
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        arena.run(|| {
            let _half = layer(&[1], 1 << 20, 0);
            panic!("a model failed mid-run");
        })
    }));
    assert!(panicked.is_err());
    // After the unwinding this thread allocates from malloc again: a plan's
    // slot handed out here would be overwritten by the next run.
    let before = arena.stats();
    let outside = inference(&SIZES);
    assert_eq!(arena.stats(), before);
    assert_eq!(arena.run(|| inference(&SIZES)), outside);
    assert_eq!(arena.stats().served - before.served, LARGE_PER_RUN);
}

#[test]
fn outputs_outlive_their_arena() {
    let expected = inference(&SIZES);
    let mut arena = Arena::new();
    arena.run(|| inference(&SIZES));
    let kept = arena.run(|| inference(&SIZES));
    assert_eq!(arena.stats().served, LARGE_PER_RUN);
    // The buffer stays while `kept` lives in it: malloc cannot hand its
    // bytes to this churn.
    drop(arena);
    let churn: Vec<Vec<u8>> = (0..4).map(|_| inference(&SIZES)).collect();
    assert_eq!(kept, expected);
    assert!(churn.iter().all(|c| c == &expected));
    // The last tensor given back frees the buffer.
    drop(kept);
    assert_eq!(inference(&SIZES), expected);
}
