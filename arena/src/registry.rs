//! The arenas in use, so that a free from any thread finds the arena its
//! pointer came from: a model's outputs outlive its run and may be dropped
//! on another thread.
//!
//! A fixed table of atomics, because the allocator cannot allocate to look
//! something up. A pointer is checked against an entry's range before the
//! entry's arena is touched; a pointer in that range is one of the arena's
//! live tensors, so the arena is not freed while it is looked at (an arena
//! leaves the table before its buffer is freed, and only when none of its
//! tensors is alive: by the thread that gives back the last one).

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};

use crate::Shared;

/// Arenas replaying at once: one per model session past its first run.
const ENTRIES: usize = 64;

struct Entry {
    start: AtomicUsize,
    end: AtomicUsize,
    shared: AtomicPtr<Shared>,
}

static TABLE: [Entry; ENTRIES] = [const {
    Entry {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        shared: AtomicPtr::new(ptr::null_mut()),
    }
}; ENTRIES];

/// Enter `shared`; false if the table is full.
pub(crate) fn enter(shared: &Shared) -> bool {
    let p = ptr::from_ref(shared).cast_mut();
    for entry in &TABLE {
        if entry
            .shared
            .compare_exchange(ptr::null_mut(), p, SeqCst, SeqCst)
            .is_ok()
        {
            // The end last: a reader checks it first.
            entry.start.store(shared.start(), SeqCst);
            entry.end.store(shared.end(), SeqCst);
            return true;
        }
    }
    false
}

/// Take `shared` out of the table. Its buffer may be freed after this.
pub(crate) fn leave(shared: &Shared) {
    let p = ptr::from_ref(shared).cast_mut();
    for entry in &TABLE {
        if entry.shared.load(SeqCst) == p {
            entry.end.store(0, SeqCst);
            entry.start.store(0, SeqCst);
            entry.shared.store(ptr::null_mut(), SeqCst);
            return;
        }
    }
}

/// The arena holding `ptr`, if any.
fn find(ptr: *mut u8) -> Option<&'static Shared> {
    let at = ptr as usize;
    TABLE.iter().find_map(|entry| {
        if at >= entry.end.load(SeqCst) || at < entry.start.load(SeqCst) {
            return None;
        }
        let shared = entry.shared.load(SeqCst);
        // SAFETY: `ptr` lies in this entry's range, so it is one of the
        // arena's live tensors and the arena stays until it is given back
        // (see the module's comment). The arena checks the range again
        // against its own, in case the entry changed hands meanwhile.
        unsafe { shared.as_ref() }.filter(|s| s.holds(ptr))
    })
}

/// Give `ptr` back to its arena; false if it came from none.
pub(crate) fn give_back(ptr: *mut u8, size: usize) -> bool {
    find(ptr).is_some_and(|shared| {
        shared.give_back(ptr, size);
        true
    })
}

pub(crate) fn holds(ptr: *mut u8) -> bool {
    find(ptr).is_some()
}
