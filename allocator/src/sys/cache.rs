//! Asking the kernel to drop a file's clean pages from the page cache.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `posix_fadvise(POSIX_FADV_DONTNEED)` over the whole of `file`: its clean, unmapped pages
/// leave the page cache (dirty or mapped pages stay).
pub(crate) fn fadvise_dontneed(file: &File) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `file`, which outlives the call; the call takes no
    // pointers and only gives the kernel advice about cached pages of that file.
    let r = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(r))
    }
}
