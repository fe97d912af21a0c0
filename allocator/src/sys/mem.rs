//! Zeroed, aligned memory blocks: the heap for small blocks, anonymous mappings with huge-page
//! advice for large ones. Callers never see uninitialised bytes.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Blocks at least this large come from an anonymous mapping advised for transparent huge pages.
pub(crate) const HUGE_THRESHOLD: usize = 2 << 20;

/// Minimum alignment of every block (one AVX-512 vector / cache line).
pub(crate) const MIN_ALIGN: usize = 64;

/// Alignment of blocks of at least one page, so O_DIRECT can read straight into them.
pub(crate) const PAGE_ALIGN: usize = 4096;

#[derive(Debug)]
enum Backing {
    /// Nothing allocated (zero-length block).
    Empty,
    /// From the global allocator with this layout.
    Heap(Layout),
    /// From `mmap` with this mapped length.
    Map(usize),
}

/// An owned, zero-initialised, aligned byte block.
#[derive(Debug)]
pub(crate) struct RawBlock {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
}

// SAFETY: RawBlock uniquely owns its memory (like Box<[u8]>); shared references only give `&[u8]`.
unsafe impl Send for RawBlock {}
// SAFETY: as above — `&RawBlock` only allows reads, `&mut RawBlock` is required for writes.
unsafe impl Sync for RawBlock {}

impl RawBlock {
    /// Allocate `len` zeroed bytes, 64-byte aligned (4 KiB aligned from one page up).
    /// Returns `None` when the OS refuses.
    pub(crate) fn zeroed(len: usize) -> Option<RawBlock> {
        if len == 0 {
            // A dangling but well-aligned pointer is valid for zero-length slices.
            let ptr = NonNull::new(MIN_ALIGN as *mut u8)?;
            return Some(RawBlock { ptr, len, backing: Backing::Empty });
        }
        if len >= HUGE_THRESHOLD {
            return Self::mapped(len);
        }
        let align = if len >= PAGE_ALIGN { PAGE_ALIGN } else { MIN_ALIGN };
        let layout = Layout::from_size_align(len, align).ok()?;
        // SAFETY: `layout` has non-zero size (len > 0 checked above).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw)?;
        Some(RawBlock { ptr, len, backing: Backing::Heap(layout) })
    }

    fn mapped(len: usize) -> Option<RawBlock> {
        let map_len = len.checked_add(PAGE_ALIGN - 1)? & !(PAGE_ALIGN - 1);
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
        // the result is checked against MAP_FAILED before use.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        // SAFETY: `raw..raw+map_len` is the mapping just created; MADV_HUGEPAGE is advice only and
        // its failure (e.g. THP disabled) is harmless, so the return value is ignored on purpose.
        unsafe {
            libc::madvise(raw, map_len, libc::MADV_HUGEPAGE);
        }
        let ptr = NonNull::new(raw.cast::<u8>())?;
        Some(RawBlock { ptr, len, backing: Backing::Map(map_len) })
    }

    /// The bytes, mutably.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is valid for `len` initialised (zeroed at allocation) bytes owned by self,
        // and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for RawBlock {
    fn drop(&mut self) {
        match self.backing {
            Backing::Empty => {}
            Backing::Heap(layout) => {
                // SAFETY: `ptr` came from `alloc_zeroed(layout)` and is freed exactly once here.
                unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
            }
            Backing::Map(map_len) => {
                // SAFETY: `ptr..ptr+map_len` is the mapping created in `mapped`, unmapped once here;
                // munmap can only fail for invalid arguments, which these are not.
                unsafe {
                    libc::munmap(self.ptr.as_ptr().cast(), map_len);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_zeroed_and_aligned() {
        for len in [0usize, 1, 63, 64, 4095, 4096, 100_000, HUGE_THRESHOLD, HUGE_THRESHOLD + 1] {
            let mut b = RawBlock::zeroed(len).unwrap();
            assert_eq!(b.as_mut_slice().len(), len);
            assert!(b.as_mut_slice().iter().all(|&x| x == 0));
            let addr = b.as_mut_slice().as_ptr() as usize;
            assert_eq!(addr % MIN_ALIGN, 0, "len {len}");
            if len >= PAGE_ALIGN {
                assert_eq!(addr % PAGE_ALIGN, 0, "len {len}");
            }
            b.as_mut_slice().iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
            assert!(b.as_mut_slice().iter().enumerate().all(|(i, &x)| x == i as u8));
        }
    }
}
