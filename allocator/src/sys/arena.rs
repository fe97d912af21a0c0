//! The DRAM arena's memory: one anonymous mapping reserved up front (advised for transparent huge
//! pages) and carved into non-overlapping spans by the coalescing extent allocator. Pages are
//! faulted in on first touch and never given back while the arena lives, so a freed span is
//! reused at any size without new faults; the mapping's length bounds what can be resident.

use std::ptr::NonNull;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::extent::ExtentAllocator;
use crate::sys::mem::{MIN_ALIGN, PAGE_ALIGN};

/// Alignment of the mapping (one transparent huge page), so huge pages can back all of it.
const HUGE_PAGE: usize = 2 << 20;

/// Free space and the high-water mark of the arena.
#[derive(Debug)]
struct Places {
    free: ExtentAllocator,
    /// Every byte at or above this offset has never been handed out, so it is still the zero
    /// page the kernel mapped: spans carved from there need no zeroing.
    touched: u64,
}

/// One reserved mapping of `capacity` bytes and the free space inside it.
#[derive(Debug)]
pub(crate) struct Arena {
    base: NonNull<u8>,
    capacity: usize,
    state: Mutex<Places>,
}

// SAFETY: the arena only hands out disjoint spans (the extent allocator never gives the same
// byte twice while it is live) and its own state sits behind a mutex.
unsafe impl Send for Arena {}
// SAFETY: as above; `&Arena` only allows carving and releasing, both under the mutex.
unsafe impl Sync for Arena {}

/// A snapshot of the arena's free space.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ArenaUsage {
    /// Free bytes (including alignment padding between spans).
    pub free: u64,
    /// The largest free extent: the biggest span that can be carved right now.
    pub largest_free: u64,
    /// Number of free extents.
    pub free_extents: usize,
    /// Bytes ever handed out from the front of the mapping (an upper bound on the pages the
    /// arena has faulted in).
    pub touched: u64,
}

impl Arena {
    /// Reserves `capacity` bytes (rounded up to whole pages). `None` when the OS refuses the
    /// mapping (address space, not memory: nothing is faulted in yet).
    pub(crate) fn reserve(capacity: usize) -> Option<Arena> {
        let capacity = capacity.checked_add(PAGE_ALIGN - 1)? & !(PAGE_ALIGN - 1);
        let mut free = ExtentAllocator::default();
        if capacity == 0 {
            let base = NonNull::new(MIN_ALIGN as *mut u8)?;
            return Some(Arena { base, capacity, state: Mutex::new(Places { free, touched: 0 }) });
        }
        let base = map_aligned(capacity)?;
        free.free(0, capacity as u64);
        Some(Arena { base, capacity, state: Mutex::new(Places { free, touched: 0 }) })
    }

    /// The mapping's length in bytes.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Carves a span of `len` bytes: 64-byte aligned, page aligned (and page-rounded) from one
    /// page up. Returns the span and how many of its leading bytes may hold old data (the rest
    /// is still zero from the kernel), or `None` when no free extent is large enough.
    pub(crate) fn carve(self: &Arc<Self>, len: usize) -> Option<(Span, usize)> {
        if len == 0 {
            let ptr = NonNull::new(MIN_ALIGN as *mut u8)?;
            return Some((Span { arena: Arc::clone(self), ptr, off: 0, placed: 0, len }, 0));
        }
        let (align, placed) = placement(len)?;
        let mut st = self.state.lock();
        let off = st.free.alloc_aligned(placed, align)?;
        let dirty = st.touched.saturating_sub(off).min(len as u64) as usize;
        st.touched = st.touched.max(off + placed);
        drop(st);
        // SAFETY: `off + placed <= capacity` (the extent allocator only holds extents inside
        // `0..capacity`), so the offset stays inside the mapping that starts at `base`.
        let ptr = unsafe { self.base.add(off as usize) };
        Some((Span { arena: Arc::clone(self), ptr, off, placed, len }, dirty))
    }

    fn release(&self, off: u64, placed: u64) {
        if placed > 0 {
            self.state.lock().free.free(off, placed);
        }
    }

    /// Free space, fragmentation and the touched high-water mark.
    pub(crate) fn usage(&self) -> ArenaUsage {
        let st = self.state.lock();
        ArenaUsage {
            free: st.free.free_bytes(),
            largest_free: st.free.largest(),
            free_extents: st.free.extent_count(),
            touched: st.touched,
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        if self.capacity > 0 {
            // SAFETY: `base..base+capacity` is the mapping made in `reserve`; every span holds an
            // `Arc` of the arena, so none is alive now. munmap only fails on bad arguments.
            unsafe {
                libc::munmap(self.base.as_ptr().cast(), self.capacity);
            }
        }
    }
}

/// Alignment and placed length of a `len`-byte span (`None` on overflow).
fn placement(len: usize) -> Option<(u64, u64)> {
    let align = if len >= PAGE_ALIGN { PAGE_ALIGN } else { MIN_ALIGN } as u64;
    let placed = (len as u64).checked_add(align - 1)? & !(align - 1);
    Some((align, placed))
}

/// Maps `len` (a page multiple) bytes of private anonymous memory starting on a huge-page
/// boundary, advised for transparent huge pages. Nothing is faulted in.
fn map_aligned(len: usize) -> Option<NonNull<u8>> {
    let total = len.checked_add(HUGE_PAGE)?;
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
    // the result is checked against MAP_FAILED before use. MAP_NORESERVE: only the pages that
    // are touched count, and the budget bounds those.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let start = raw as usize;
    let aligned = (start + HUGE_PAGE - 1) & !(HUGE_PAGE - 1);
    let head = aligned - start;
    let tail = total - head - len;
    // SAFETY: `start..aligned` and `aligned+len..start+total` are the parts of the mapping just
    // made that lie outside the aligned window (both page multiples: mmap returns page-aligned
    // addresses and `len` is a page multiple); nothing refers to them. A failed munmap would only
    // leave untouched address space mapped.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + len) as *mut libc::c_void, tail);
        }
    }
    // SAFETY: `aligned..aligned+len` is inside the mapping; MADV_HUGEPAGE is advice only and its
    // failure (THP disabled or unavailable) is harmless, so the return value is ignored.
    unsafe {
        libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
    NonNull::new(aligned as *mut u8)
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
