//! A tensor arena for a runtime that has none: tract allocates every
//! intermediate tensor of an inference with the global allocator and frees
//! it after its last reader. A detector run allocates some 90 MiB that way,
//! of which about 10 are alive at once, and glibc keeps the high-water mark
//! of that churn resident in each inference thread's arena: three times what
//! the run needs, per thread (docs/BENCHMARKS.md, "Where the memory goes").
//! onnxruntime plans that memory; tract plans it on its GPU back ends only.
//!
//! A model session with a given input shape allocates the same sizes in the
//! same order on every run. So [`Arena::run`] records the first run's large
//! allocations and when each was freed, places them in one buffer by
//! lifetime (greedy by size, as TensorFlow Lite does), and from the next run
//! on hands out the k-th allocation at its planned offset, from
//! [`Replaying`], the global allocator. Everything it cannot vouch for goes
//! to the system allocator: small allocations, other threads', a run that
//! asks for a different size than planned, a tensor whose bytes are still
//! held (a model's outputs kept past the next run). A recorded allocation
//! that a later run does not make is skipped, and dropped from the plan; a
//! run that asks for more than a few allocations the plan does not have
//! strays from it and is recorded again, a few times at most.

mod plan;
mod registry;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Smaller allocations never reach an arena: every tensor worth planning is
/// bigger, and a run's many small objects are what malloc does well.
pub const MIN_SIZE: usize = 64 << 10;

/// Offsets in the buffer are aligned at least this much (a cache line).
const MIN_ALIGN: usize = 64;

/// Allocations recorded per run; a run with more is not planned. The
/// detector makes a few hundred.
const MAX_TENSORS: usize = 4096;

/// Runs recorded per arena before it gives up replaying.
const MAX_RECORDINGS: u32 = 4;

/// Recorded allocations a replayed run may skip at once, and allocations
/// the plan lacks that it may make, without straying. A thread's first
/// inference also grows tract-linalg's per-thread scratch (`TLSScratch`:
/// the detector's first run at 416×288 makes one block of 109 KiB among its
/// 153 tensors, kept by the thread), which later runs on that thread do not
/// make, and which a run on a fresh thread makes although the plan has no
/// slot for it. Without the leeway each worker's second run strayed and a
/// third was recorded, a fresh mapping per tensor.
const SKIPPED: usize = 8;

/// The global allocator: `#[global_allocator] static A: Replaying = Replaying;`
/// in the binary. Without it, [`Arena::run`] only runs its closure.
pub struct Replaying;

thread_local! {
    /// The arena of the run on this thread, if any. Const-initialised and
    /// without a destructor: reading it never allocates.
    static CURRENT: Cell<*const Inner> = const { Cell::new(ptr::null()) };
}

fn current() -> Option<&'static Inner> {
    let p = CURRENT.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: CURRENT points at an arena only while that arena's `run` is
    // on this thread's stack (the `Scope` guard), which outlives this call.
    unsafe { p.as_ref() }
}

// SAFETY: every path hands out memory from `System` or from a planned
// arena slot that no live allocation overlaps (`Shared::take`), with the
// layout's size and alignment, and frees each pointer where it came from.
unsafe impl GlobalAlloc for Replaying {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match current() {
            Some(arena) if layout.size() >= MIN_SIZE => arena.alloc(layout, false),
            _ => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match current() {
            Some(arena) if layout.size() >= MIN_SIZE => arena.alloc(layout, true),
            _ => unsafe { System.alloc_zeroed(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= MIN_SIZE {
            if registry::give_back(ptr, layout.size()) {
                return;
            }
            if let Some(arena) = current() {
                arena.freed(ptr);
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let large = layout.size().max(new_size) >= MIN_SIZE;
        if !large || (current().is_none() && !registry::holds(ptr)) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to the
        // alignment, does not overflow.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller size and
            // distinct: the old one is still allocated.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Have glibc serve every allocation of [`MIN_SIZE`] or more from a mapping
/// of its own, handed back to the system when freed; call once at start.
/// The allocations an arena does not serve (a recorded run's, those of a
/// run that strays, other threads') would otherwise leave each inference
/// thread's malloc arena at the high-water mark of a run's churn, which the
/// planned buffer would add to instead of replacing. glibc's own threshold
/// starts at 128 KiB and rises to the largest block freed, so after a few
/// tensors it keeps them all in the heap. Elsewhere a no-op; false if glibc
/// refused.
pub fn map_large_allocations() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        // SAFETY: mallopt takes no pointer and only changes malloc's policy
        // for later allocations.
        unsafe { mallopt(M_MMAP_THRESHOLD, MIN_SIZE as std::ffi::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    true
}

/// How an arena has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Runs through [`Arena::run`].
    pub runs: u64,
    /// Runs recorded to make a plan.
    pub recordings: u32,
    /// The planned buffer's length; 0 before the second run.
    pub buffer_bytes: usize,
    /// Large allocations served from the buffer.
    pub served: u64,
    /// Large allocations of replayed runs sent to the system allocator.
    pub fell_back: u64,
}

/// One model session's tensor memory. Runs of one arena must allocate alike
/// (one model, one input shape): a session's. Not shared between threads:
/// each inference thread has its sessions.
pub struct Arena {
    inner: Box<Inner>,
}

// SAFETY: `Inner` is only touched by the thread that holds `&mut Arena`
// (through `run`, and `drop`); what other threads reach, through the
// registry, is `Shared`, which is made of atomics and immutable data.
unsafe impl Send for Arena {}

impl Default for Arena {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Arena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arena")
            .field("stats", &self.stats())
            .finish()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Large allocations go to the system allocator and are written down.
    Recording,
    /// They are served from the plan.
    Replaying,
    /// Recording did not give a usable plan.
    Off,
}

/// One allocation of a recorded run.
#[derive(Clone, Copy)]
struct Recorded {
    ptr: usize,
    tensor: plan::Lifetime,
}

struct Inner {
    mode: Cell<Mode>,
    /// Allocations and frees so far in this run: the recording's clock.
    clock: Cell<u32>,
    /// Room for MAX_TENSORS, reserved before a recorded run: the allocator
    /// cannot allocate for its own bookkeeping.
    recorded: UnsafeCell<Vec<Recorded>>,
    /// The last recording had more than MAX_TENSORS allocations.
    overflowed: Cell<bool>,
    /// The plan being replayed, made at the start of the run after a
    /// recorded one (a session run only once never plans).
    shared: Cell<Option<&'static Shared>>,
    /// Index of the next large allocation in a replayed run.
    cursor: Cell<usize>,
    /// Allocations of a replayed run the plan does not have.
    unplanned: Cell<u32>,
    /// A replayed run skipped slots of the plan.
    skipped: Cell<bool>,
    stats: Cell<Stats>,
}

impl Inner {
    /// The recording. Only the thread running the arena calls this, and
    /// each caller is done with the borrow before the next call: the
    /// allocator during a run, `prepare`, `finish` and `plan` between runs.
    #[allow(clippy::mut_from_ref)]
    fn recorded(&self) -> &mut Vec<Recorded> {
        // SAFETY: as above; no two borrows are ever alive at once.
        unsafe { &mut *self.recorded.get() }
    }

    fn tick(&self) -> u32 {
        let now = self.clock.get() + 1;
        self.clock.set(now);
        now
    }

    fn alloc(&self, layout: Layout, zeroed: bool) -> *mut u8 {
        if self.mode.get() == Mode::Replaying
            && let Some(shared) = self.shared.get()
        {
            let k = self.cursor.get();
            let (slot, taken) = shared.take(k, layout);
            // An allocation the plan lacks leaves the cursor where it was:
            // the next one may be the slot it stood at.
            self.cursor.set(slot.map_or(k, |j| j + 1));
            self.skipped
                .set(self.skipped.get() || slot.is_some_and(|j| j > k));
            let mut stats = self.stats.get();
            match taken {
                Ok(p) => {
                    stats.served += 1;
                    self.stats.set(stats);
                    if zeroed {
                        // SAFETY: the slot is `layout.size()` bytes, ours alone.
                        unsafe { ptr::write_bytes(p, 0, layout.size()) };
                    }
                    return p;
                }
                Err(refused) => {
                    stats.fell_back += 1;
                    self.stats.set(stats);
                    if refused == Refused::NotPlanned {
                        self.unplanned.set(self.unplanned.get() + 1);
                    }
                }
            }
        }
        // SAFETY: a non-zero size (at least MIN_SIZE), as GlobalAlloc requires.
        let p = unsafe {
            if zeroed {
                System.alloc_zeroed(layout)
            } else {
                System.alloc(layout)
            }
        };
        if self.mode.get() == Mode::Recording && !p.is_null() {
            let recorded = self.recorded();
            if recorded.len() < recorded.capacity() {
                recorded.push(Recorded {
                    ptr: p as usize,
                    tensor: plan::Lifetime {
                        size: layout.size(),
                        align: layout.align().max(MIN_ALIGN),
                        born: self.tick(),
                        died: u32::MAX,
                    },
                });
            } else {
                self.overflowed.set(true);
            }
        }
        p
    }

    /// A large system allocation was freed on this thread during a run.
    fn freed(&self, ptr: *mut u8) {
        if self.mode.get() != Mode::Recording {
            return;
        }
        let recorded = self.recorded();
        if let Some(r) = recorded
            .iter_mut()
            .rev()
            .find(|r| r.ptr == ptr as usize && r.tensor.died == u32::MAX)
        {
            r.tensor.died = self.tick();
        }
    }

    /// Before a run: plan from the last recording, or prepare to record.
    fn prepare(&self) {
        if self.mode.get() == Mode::Replaying && self.shared.get().is_none() {
            self.plan();
        }
        match self.mode.get() {
            Mode::Recording => {
                let recorded = self.recorded();
                recorded.clear();
                recorded.reserve_exact(MAX_TENSORS);
                self.clock.set(0);
                self.overflowed.set(false);
            }
            Mode::Replaying => {
                self.cursor.set(0);
                self.unplanned.set(0);
                self.skipped.set(false);
            }
            Mode::Off => {}
        }
    }

    /// After a run: what the next one does.
    fn finish(&self) {
        let next = match self.mode.get() {
            Mode::Recording => {
                let mut stats = self.stats.get();
                stats.recordings += 1;
                self.stats.set(stats);
                let recorded = self.recorded();
                if self.overflowed.get() || recorded.is_empty() {
                    // Nothing to plan: no large tensors, or this binary's
                    // allocator is not `Replaying`.
                    recorded.clear();
                    recorded.shrink_to_fit();
                    Mode::Off
                } else {
                    Mode::Replaying
                }
            }
            Mode::Replaying if self.unplanned.get() as usize > SKIPPED => {
                self.drop_plan();
                if self.stats.get().recordings < MAX_RECORDINGS {
                    Mode::Recording
                } else {
                    Mode::Off
                }
            }
            Mode::Replaying if self.skipped.get() => {
                self.replan();
                if self.shared.get().is_some() {
                    Mode::Replaying
                } else {
                    Mode::Off
                }
            }
            mode => mode,
        };
        self.mode.set(next);
    }

    /// Place the recorded tensors and start replaying them.
    fn plan(&self) {
        let recorded = self.recorded();
        let end = self.clock.get() + 1;
        let tensors: Vec<plan::Lifetime> = recorded
            .iter()
            .map(|r| plan::Lifetime {
                died: r.tensor.died.min(end),
                ..r.tensor
            })
            .collect();
        recorded.clear();
        recorded.shrink_to_fit();
        self.place(&tensors);
    }

    /// Plan again without the slots a replayed run skipped: a slot kept for
    /// what the recording thread made once (its scratch) would be handed to
    /// the scratch another thread grows from the plan, which the thread then
    /// keeps, and with it the buffer.
    fn replan(&self) {
        let Some(shared) = self.shared.get() else {
            return;
        };
        let tensors: Vec<plan::Lifetime> = shared
            .slots
            .iter()
            .filter(|slot| !slot.skipped.load(Ordering::Relaxed))
            .map(|slot| slot.tensor)
            .collect();
        self.drop_plan();
        self.place(&tensors);
    }

    /// Place `tensors` in a buffer and replay them from it.
    fn place(&self, tensors: &[plan::Lifetime]) {
        let shared = Shared::new(tensors).map(|s| &*Box::leak(Box::new(s)));
        match shared {
            Some(shared) if registry::enter(shared) => {
                let mut stats = self.stats.get();
                stats.buffer_bytes = shared.layout.size();
                self.stats.set(stats);
                self.shared.set(Some(shared));
            }
            Some(shared) => {
                // The table is full: this session runs on malloc.
                // SAFETY: never entered, so nothing else can reach it.
                unsafe { Shared::free(shared) };
                self.mode.set(Mode::Off);
            }
            None => self.mode.set(Mode::Off),
        }
    }

    /// Stop replaying. The buffer goes now, or with the last of its
    /// tensors that a caller still holds (a session's outputs kept past a
    /// re-plan or past the session).
    fn drop_plan(&self) {
        let mut stats = self.stats.get();
        stats.buffer_bytes = 0;
        self.stats.set(stats);
        if let Some(shared) = self.shared.take() {
            shared.orphan();
        }
    }
}

/// Restores the thread's previous arena when a run ends, panicking or not.
struct Scope {
    previous: *const Inner,
}

impl Scope {
    fn enter(inner: &Inner) -> Self {
        let previous = CURRENT.with(|c| c.replace(ptr::from_ref(inner)));
        Self { previous }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

impl Arena {
    pub fn new() -> Self {
        Self {
            inner: Box::new(Inner {
                mode: Cell::new(Mode::Recording),
                clock: Cell::new(0),
                recorded: UnsafeCell::new(Vec::new()),
                overflowed: Cell::new(false),
                shared: Cell::new(None),
                cursor: Cell::new(0),
                unplanned: Cell::new(0),
                skipped: Cell::new(false),
                stats: Cell::new(Stats::default()),
            }),
        }
    }

    /// Run `f` (one inference) with this arena serving its large
    /// allocations on this thread.
    pub fn run<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let inner = &*self.inner;
        let mut stats = inner.stats.get();
        stats.runs += 1;
        inner.stats.set(stats);
        inner.prepare();
        if inner.mode.get() == Mode::Off {
            return f();
        }
        let result = {
            let _scope = Scope::enter(inner);
            f()
        };
        inner.finish();
        result
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats.get()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        self.inner.drop_plan();
    }
}

/// Why a planned slot was not handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// The run asked for another size or alignment than the recording did,
    /// or more allocations.
    NotPlanned,
    /// Bytes of the slot are still held, by an earlier run's outputs.
    Busy,
}

/// One planned slot.
struct Slot {
    offset: usize,
    /// The recorded allocation it was placed for.
    tensor: plan::Lifetime,
    /// A replayed run passed it over (only the arena's thread touches it).
    skipped: AtomicBool,
}

/// A plan and its buffer: what frees on any thread reach through the
/// registry. Immutable but for the live bits.
pub(crate) struct Shared {
    base: *mut u8,
    layout: Layout,
    /// In allocation order.
    slots: Box<[Slot]>,
    /// Slot indices by offset, for frees.
    by_offset: Box<[u32]>,
    /// Bit k: slot k is handed out and not yet given back.
    live: Box<[AtomicU64]>,
    /// Slots handed out and not given back, plus ORPHANED once the arena
    /// let go of the plan: whoever brings it to ORPHANED alone frees it.
    holds: AtomicUsize,
}

const ORPHANED: usize = 1 << (usize::BITS - 1);

// SAFETY: `base` is only an address here; the bytes behind it belong to
// whoever holds a slot, and the live bits are atomics.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

impl Shared {
    fn new(tensors: &[plan::Lifetime]) -> Option<Self> {
        let (offsets, len) = plan::place(tensors);
        // Whole pages: the registry's ranges are pages, and no other
        // allocation may share one with the buffer.
        let len = len.max(1).next_multiple_of(registry::PAGE);
        let layout = Layout::from_size_align(len, registry::PAGE).ok()?;
        // SAFETY: a non-zero size.
        let base = unsafe { System.alloc(layout) };
        if base.is_null() {
            return None;
        }
        let slots: Box<[Slot]> = offsets
            .iter()
            .zip(tensors)
            .map(|(&offset, &tensor)| Slot {
                offset,
                tensor,
                skipped: AtomicBool::new(false),
            })
            .collect();
        let mut by_offset: Vec<u32> = (0..slots.len() as u32).collect();
        by_offset.sort_by_key(|&k| slots[k as usize].offset);
        Some(Self {
            base,
            layout,
            live: (0..slots.len().div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            slots,
            by_offset: by_offset.into(),
            holds: AtomicUsize::new(0),
        })
    }

    /// The arena lets go of the plan: free it unless slots are held.
    fn orphan(&'static self) {
        if self.holds.fetch_or(ORPHANED, Ordering::AcqRel) == 0 {
            self.release();
        }
    }

    /// Out of the registry, then freed.
    fn release(&'static self) {
        registry::leave(self);
        // SAFETY: orphaned with nothing held and out of the registry: no
        // pointer into it can be freed or used any more.
        unsafe { Self::free(self) };
    }

    /// Free a plan that nothing reaches any more.
    ///
    /// # Safety
    /// `shared` came from `Box::leak` in `Inner::plan`, is out of the
    /// registry, and no slot of it is alive.
    unsafe fn free(shared: &'static Shared) {
        let shared = unsafe { Box::from_raw(ptr::from_ref(shared).cast_mut()) };
        unsafe { System.dealloc(shared.base, shared.layout) };
    }

    fn start(&self) -> usize {
        self.base as usize
    }

    fn len(&self) -> usize {
        self.layout.size()
    }

    fn holds(&self, ptr: *mut u8) -> bool {
        (self.start()..self.start() + self.len()).contains(&(ptr as usize))
    }

    fn is_live(&self, k: usize) -> bool {
        self.live[k / 64].load(Ordering::Acquire) & (1 << (k % 64)) != 0
    }

    /// Hand out the first slot from `k` on, skipping at most [`SKIPPED`],
    /// that was planned for `layout`, if none of its bytes is held. Returns
    /// the slot found, if any, with the outcome. An allocation the plan
    /// lacks but sized like a slot a few ahead takes that one: the slots
    /// passed over then go at the re-plan, and to malloc after it.
    fn take(&self, k: usize, layout: Layout) -> (Option<usize>, Result<*mut u8, Refused>) {
        let fits = |slot: &Slot| {
            slot.tensor.size == layout.size()
                && (self.base as usize + slot.offset).is_multiple_of(layout.align())
        };
        let found = self
            .slots
            .iter()
            .enumerate()
            .skip(k)
            .take(SKIPPED + 1)
            .find(|(_, slot)| fits(slot));
        match found {
            Some((j, slot)) => {
                for passed in &self.slots[k..j] {
                    passed.skipped.store(true, Ordering::Relaxed);
                }
                (Some(j), self.take_slot(j, slot))
            }
            None => (None, Err(Refused::NotPlanned)),
        }
    }

    /// Hand out slot `k` if none of its bytes is held.
    fn take_slot(&self, k: usize, slot: &Slot) -> Result<*mut u8, Refused> {
        let (start, end) = (slot.offset, slot.offset + slot.tensor.size);
        for (w, word) in self.live.iter().enumerate() {
            let mut bits = word.load(Ordering::Acquire);
            while bits != 0 {
                let j = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let other = &self.slots[j];
                if other.offset < end && start < other.offset + other.tensor.size {
                    return Err(Refused::Busy);
                }
            }
        }
        self.holds.fetch_add(1, Ordering::AcqRel);
        self.live[k / 64].fetch_or(1 << (k % 64), Ordering::AcqRel);
        // SAFETY: offset + size lies within the buffer (plan::place).
        Ok(unsafe { self.base.add(start) })
    }

    /// A pointer into the buffer is freed: clear the live slot that starts
    /// there, and free the plan if it was the last one held of an orphan.
    fn give_back(&'static self, ptr: *mut u8, size: usize) {
        let offset = ptr as usize - self.start();
        let first = self
            .by_offset
            .partition_point(|&k| self.slots[k as usize].offset < offset);
        let found = self.by_offset[first..]
            .iter()
            .map(|&k| k as usize)
            .take_while(|&k| self.slots[k].offset == offset)
            .find(|&k| self.slots[k].tensor.size == size && self.is_live(k));
        if let Some(k) = found {
            self.live[k / 64].fetch_and(!(1 << (k % 64)), Ordering::AcqRel);
            if self.holds.fetch_sub(1, Ordering::AcqRel) == ORPHANED | 1 {
                self.release();
            }
        }
    }
}
