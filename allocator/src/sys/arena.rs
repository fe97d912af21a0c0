//! The DRAM arena's memory: one anonymous mapping reserved up front, eight times the budget in
//! address space (less where the OS refuses that much), carved into non-overlapping
//! page-aligned spans by the coalescing extent allocator. Address space is cheap, so
//! fragmentation rarely refuses a block; memory is not, so the [`ResidentSet`] holds resident
//! pages to the budget: a freed span stays faulted in and is reused at any size without new
//! faults, and only when a span elsewhere needs fresh pages beyond the budget are freed pages
//! given back to the OS — moved into the new block with `mremap` where the kernel allows (no
//! faults, no zeroing), else dropped (`MADV_DONTNEED`).
//!
//! The mapping is advised against transparent huge pages: a huge page makes 2 MiB resident on
//! one touch and cannot be released piecewise, which would break the exact bound.

use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::extent::ExtentAllocator;
use crate::resident::ResidentSet;
use crate::sys::mem::{MIN_ALIGN, PAGE_ALIGN};

/// Address space reserved per byte of budget, tried in this order. Untouched address space
/// costs nothing, and a budget's worth of small pinned blocks spread over twice the budget
/// left no hole for a quarter-budget block in 4 of 10 runs of a store at its smallest workable
/// budget; eight times leaves room for that pattern
/// (`a_cache_at_its_byte_limit_is_not_refused_for_address_space`). Where the OS counts address
/// space (RLIMIT_AS, strict overcommit) and refuses that much, less is taken rather than
/// failing: blocks are then refused for fragmentation sooner, never beyond the budget.
pub(crate) const SPACE_FACTORS: [usize; 3] = [8, 2, 1];

/// Page moves per arena at most: each can split the mapping into more kernel VMAs (bounded
/// by `vm.max_map_count`), so past this the arena releases and faults pages instead.
const MAX_MOVES: u64 = 8192;

/// Free space and residency of the arena.
#[derive(Debug)]
struct Places {
    free: ExtentAllocator,
    resident: ResidentSet,
    /// Spans carved so far, and how many of them lay wholly in resident (freed) memory.
    carves: u64,
    reused: u64,
    /// Page moves done so far, and the bytes they moved.
    moves: u64,
    moved: u64,
}

/// One reserved mapping and the free space and resident pages inside it.
#[derive(Debug)]
pub(crate) struct Arena {
    base: NonNull<u8>,
    /// Bytes of address space mapped.
    space: usize,
    /// The most that may be resident (the budget rounded up to a page).
    capacity: usize,
    state: Mutex<Places>,
}

// SAFETY: the arena only hands out disjoint spans (the extent allocator never gives the same
// byte twice while it is live) and its own state sits behind a mutex.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` only allows carving and releasing, both under the mutex.
unsafe impl Sync for Arena {}

/// A snapshot of the arena's free space and residency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ArenaUsage {
    /// Bytes that live spans could still grow by: capacity minus live (page-rounded) spans.
    pub free: u64,
    /// The largest span that can be carved right now (bounded by `free` and by the largest
    /// free extent of address space).
    pub largest_free: u64,
    /// Number of free extents of address space.
    pub free_extents: usize,
    /// Bytes resident: live spans plus freed pages kept for reuse (never above capacity).
    pub resident: u64,
    /// Non-empty spans carved so far.
    pub carves: u64,
    /// Of those, spans that lay wholly in resident freed memory (no new page faults).
    pub reused: u64,
    /// Bytes carved from memory that was not resident (faulted in on first touch), and bytes
    /// of freed memory released to the OS to make room for them, since creation (pages moved
    /// from one to the other are in neither).
    pub faulted: u64,
    /// See `faulted`.
    pub released: u64,
    /// Bytes of freed resident pages moved into new blocks (no faults, no zeroing by the
    /// kernel), since creation.
    pub moved: u64,
}

impl Arena {
    /// Reserves address space for at most `capacity` resident bytes (rounded up to whole
    /// pages): the most of [`SPACE_FACTORS`] the OS grants. `None` when it refuses even one
    /// byte of address space per byte of capacity (address space, not memory: nothing is
    /// faulted in yet).
    pub(crate) fn reserve(capacity: usize) -> Option<Arena> {
        SPACE_FACTORS.iter().find_map(|&factor| Self::reserve_with_space(capacity, factor))
    }

    /// Bytes of address space reserved.
    #[cfg(test)]
    pub(crate) fn space(&self) -> usize {
        self.space
    }

    /// [`Self::reserve`] with `factor` bytes of address space per byte of capacity.
    pub(crate) fn reserve_with_space(capacity: usize, factor: usize) -> Option<Arena> {
        let capacity = capacity.checked_add(PAGE_ALIGN - 1)? & !(PAGE_ALIGN - 1);
        let space = capacity.checked_mul(factor)?;
        let mut free = ExtentAllocator::default();
        let resident = ResidentSet::new(capacity as u64);
        let base = if space == 0 { NonNull::new(MIN_ALIGN as *mut u8)? } else { map(space)? };
        free.free(0, space as u64);
        let state = Mutex::new(Places { free, resident, carves: 0, reused: 0, moves: 0, moved: 0 });
        Some(Arena { base, space, capacity, state })
    }

    /// The most the arena may hold resident, in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Carves a span of `len` bytes, page aligned and placed in whole pages. Returns the span
    /// and how many of its leading bytes may hold old data (the rest is still zero from the
    /// kernel), or `None` when neither address space nor the residency limit allows it.
    pub(crate) fn carve(self: &Arc<Self>, len: usize) -> Option<(Span, usize)> {
        if len == 0 {
            let ptr = NonNull::new(MIN_ALIGN as *mut u8)?;
            return Some((Span { arena: Arc::clone(self), ptr, off: 0, placed: 0, len }, 0));
        }
        let placed = (len as u64).checked_add(PAGE_ALIGN as u64 - 1)? & !(PAGE_ALIGN as u64 - 1);
        let mut st = self.state.lock();
        let Places { free, resident, .. } = &mut *st;
        let off = resident.place(free, placed, PAGE_ALIGN as u64)?;
        let Some(taken) = st.resident.take(off, off + placed) else {
            st.free.free(off, placed);
            return None;
        };
        st.carves += 1;
        if taken.reused == placed {
            st.reused += 1;
        }
        // Pages released elsewhere are moved into the fresh pieces instead, when the kernel
        // allows: the block then takes no faults and the kernel zeroes nothing.
        let mut fresh = taken.fresh.iter().copied();
        let mut dst = fresh.next();
        let mut moved_any = false;
        for (a, l) in taken.release {
            let mut done = 0;
            while done < l {
                let Some((fs, fl)) = dst else { break };
                let n = (l - done).min(fl);
                if st.moves < MAX_MOVES && self.move_pages(a + done, fs, n) {
                    st.moves += 1;
                    st.moved += n;
                    moved_any = true;
                } else {
                    self.drop_pages(a + done, n);
                }
                done += n;
                dst = if n < fl { Some((fs + n, fl - n)) } else { fresh.next() };
            }
            if done < l {
                self.drop_pages(a + done, l - done);
            }
        }
        drop(st);
        // Moved pages hold old data: the whole block may need zeroing.
        let stale = if moved_any { len } else { (taken.stale_end - off).min(len as u64) as usize };
        // SAFETY: `off + placed <= space` (the extent allocator only holds extents inside
        // `0..space`), so the offset stays inside the mapping that starts at `base`.
        let ptr = unsafe { self.base.add(off as usize) };
        Some((Span { arena: Arc::clone(self), ptr, off, placed, len }, stale))
    }

    /// Moves the resident pages of `src..src+n` to `dst..dst+n` (both inside the mapping and
    /// free: no span covers them), leaving `src` mapped and empty. `false` if the kernel
    /// refused (then nothing moved).
    fn move_pages(&self, src: u64, dst: u64, n: u64) -> bool {
        // SAFETY: both ranges are page-aligned, inside our mapping, and covered by no live span
        // (`src` is a freed range being released, `dst` a fresh piece of the span being carved
        // under the same lock), so moving the pages changes no memory anyone can see.
        // MREMAP_DONTUNMAP keeps `src` mapped (empty, reading back as zero) and MREMAP_FIXED
        // replaces the untouched mapping at `dst`.
        let r = unsafe {
            libc::mremap(
                self.base.as_ptr().add(src as usize).cast(),
                n as usize,
                n as usize,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
                self.base.as_ptr().add(dst as usize).cast::<libc::c_void>(),
            )
        };
        r != libc::MAP_FAILED
    }

    /// Gives the pages of `off..off+n` (free, covered by no span) back to the OS.
    fn drop_pages(&self, off: u64, n: u64) {
        // SAFETY: `off..off+n` is a page-aligned range inside the mapping that no live span
        // covers (the resident set only releases freed ranges), so dropping its pages (they
        // read back as zero) affects no one. Failure would only leave them resident.
        unsafe {
            libc::madvise(
                self.base.as_ptr().add(off as usize).cast(),
                n as usize,
                libc::MADV_DONTNEED,
            );
        }
    }

    fn release(&self, off: u64, placed: u64) {
        if placed > 0 {
            let mut st = self.state.lock();
            st.free.free(off, placed);
            st.resident.give_back(off, off + placed);
        }
    }

    /// Bytes of the mapping the kernel has resident right now (`mincore`), for tests that check
    /// the bookkeeping against the kernel's view.
    #[cfg(test)]
    pub(crate) fn kernel_resident(&self) -> Option<usize> {
        if self.space == 0 {
            return Some(0);
        }
        let mut vec = vec![0u8; self.space / PAGE_ALIGN];
        // SAFETY: `base..base+space` is our page-aligned mapping and `vec` has one byte per page
        // of it, as mincore requires.
        let rc = unsafe { libc::mincore(self.base.as_ptr().cast(), self.space, vec.as_mut_ptr()) };
        (rc == 0).then(|| vec.iter().filter(|&&b| b & 1 == 1).count() * PAGE_ALIGN)
    }

    /// Free space, fragmentation and residency.
    pub(crate) fn usage(&self) -> ArenaUsage {
        let st = self.state.lock();
        let free = st.resident.limit() - st.resident.live();
        ArenaUsage {
            free,
            largest_free: st.free.largest().min(free),
            free_extents: st.free.extent_count(),
            resident: st.resident.resident(),
            carves: st.carves,
            reused: st.reused,
            faulted: st.resident.churn().0 - st.moved,
            released: st.resident.churn().1 - st.moved,
            moved: st.moved,
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if self.space > 0 {
            // SAFETY: `base..base+space` is the mapping made in `reserve`; every span holds an
            // `Arc` of the arena, so none is alive now. munmap only fails on bad arguments.
            unsafe {
                libc::munmap(self.base.as_ptr().cast(), self.space);
            }
        }
    }
}

/// Maps `len` (a page multiple) bytes of private anonymous memory, advised against transparent
/// huge pages. Nothing is faulted in.
fn map(len: usize) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
    // the result is checked against MAP_FAILED before use. MAP_NORESERVE: only the pages that
    // are touched count, and the resident set bounds those.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    // SAFETY: `raw..raw+len` is the mapping just made; MADV_NOHUGEPAGE is advice only and its
    // failure (a kernel without THP) is harmless, so the return value is ignored.
    unsafe {
        libc::madvise(raw, len, libc::MADV_NOHUGEPAGE);
    }
    NonNull::new(raw.cast::<u8>())
}

/// A span of the arena owned by one block: returned to the arena's free space on drop.
#[derive(Debug)]
pub(crate) struct Span {
    arena: Arc<Arena>,
    ptr: NonNull<u8>,
    off: u64,
    placed: u64,
    len: usize,
}

// SAFETY: a Span uniquely owns its bytes (the arena never hands them out twice while it lives),
// like a Box<[u8]>; shared references only give `&[u8]`.
unsafe impl Send for Span {}
// SAFETY: as above — `&Span` only allows reads, `&mut Span` is required for writes.
unsafe impl Sync for Span {}

impl Span {
    /// Length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies inside the arena's mapping (kept alive by `arena`), is
        // owned by this span alone, and is initialised (zero from the kernel or written since).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes as native `u64` words (a trailing partial word is omitted).
    pub(crate) fn as_u64s(&self) -> &[u64] {
        // SAFETY: the pointer is at least 64-byte aligned (so 8-byte aligned for u64), valid for
        // `len / 8 * 8` initialised bytes owned by this span, and every bit pattern is a u64.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u64>(), self.len / 8) }
    }

    /// The bytes as mutable `u64` words (a trailing partial word is omitted).
    pub(crate) fn as_u64s_mut(&mut self) -> &mut [u64] {
        // SAFETY: as in `as_u64s`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast::<u64>(), self.len / 8) }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.arena.release(self.off, self.placed);
    }
}
