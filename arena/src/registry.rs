//! The arenas in use, so that a free from any thread finds the arena its
//! pointer came from: a model's outputs outlive its run and may be dropped
//! on another thread.
//!
//! A fixed table of atomics, because the allocator cannot allocate to look
//! something up. An entry's range is one atomic word, so a reader never
//! pairs one arena's start with another's end. A pointer inside a range it
//! has read is one of that arena's live blocks: nothing else can lie in an
//! arena's buffer while the buffer exists, and the pointer was allocated
//! before its free began. So the arena is still entered and cannot be freed
//! while it is looked at: it leaves the table, and then goes, only once
//! none of its blocks is alive (given back by the thread that frees the
//! last one).

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering::SeqCst};

use crate::Shared;

/// Arenas replaying at once: one per model session past its first run.
const ENTRIES: usize = 64;

/// Buffers start on a page and span whole pages: their range packs into
/// one word as (first page << LEN_BITS) | pages.
pub(crate) const PAGE: usize = 4096;
const LEN_BITS: u32 = 28;

struct Entry {
    /// 0 while free or being filled.
    range: AtomicU64,
    shared: AtomicPtr<Shared>,
}

static TABLE: [Entry; ENTRIES] = [const {
    Entry {
        range: AtomicU64::new(0),
        shared: AtomicPtr::new(ptr::null_mut()),
    }
}; ENTRIES];

/// The packed range of a buffer, if it fits: 2^36 pages of address space
/// (48-bit addresses) and 2^28 pages (1 TiB) of length.
fn pack(start: usize, len: usize) -> Option<u64> {
    let (first, pages) = (start / PAGE, len.div_ceil(PAGE));
    let fits = start.is_multiple_of(PAGE)
        && pages > 0
        && (first as u64) < 1 << (64 - LEN_BITS)
        && (pages as u64) < 1 << LEN_BITS;
    fits.then_some((first as u64) << LEN_BITS | pages as u64)
}

fn contains(range: u64, at: usize) -> bool {
    let first = (range >> LEN_BITS) as usize;
    let pages = (range & ((1 << LEN_BITS) - 1)) as usize;
    range != 0 && at / PAGE >= first && at / PAGE < first + pages
}

/// Enter `shared`; false if the table is full or its range does not pack.
pub(crate) fn enter(shared: &Shared) -> bool {
    let Some(range) = pack(shared.start(), shared.len()) else {
        return false;
    };
    let p = ptr::from_ref(shared).cast_mut();
    for entry in &TABLE {
        if entry
            .shared
            .compare_exchange(ptr::null_mut(), p, SeqCst, SeqCst)
            .is_ok()
        {
            entry.range.store(range, SeqCst);
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
            entry.range.store(0, SeqCst);
            entry.shared.store(ptr::null_mut(), SeqCst);
            return;
        }
    }
}

/// The arena holding `ptr`, if any.
fn find(ptr: *mut u8) -> Option<&'static Shared> {
    let at = ptr as usize;
    TABLE.iter().find_map(|entry| {
        if !contains(entry.range.load(SeqCst), at) {
            return None;
        }
        // SAFETY: `ptr` lies in the range this entry held, so it is one of
        // that arena's live blocks and the arena is still this entry's (see
        // the module's comment); null only if it is being filled.
        unsafe { entry.shared.load(SeqCst).as_ref() }.filter(|s| s.holds(ptr))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_range_holds_its_pages_and_nothing_else() {
        let (start, len) = (0x7f12_3456_7000, 3 * PAGE);
        let range = pack(start, len).unwrap();
        assert!(!contains(range, start - 1));
        assert!(contains(range, start));
        assert!(contains(range, start + len - 1));
        assert!(!contains(range, start + len));
        assert!(!contains(0, 0));
    }

    #[test]
    fn ranges_that_do_not_pack_are_refused() {
        assert_eq!(pack(0x7f12_3456_7010, PAGE), None, "not on a page");
        assert_eq!(pack(0x7f12_3456_7000, 0), None, "empty");
        assert_eq!(pack(1 << 60, PAGE), None, "beyond 48 bits");
        assert_eq!(pack(PAGE, PAGE << LEN_BITS), None, "1 TiB or more");
    }
}
