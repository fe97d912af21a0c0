//! Advisory whole-file locks (`flock`) that keep a second writer out of a pool directory.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Try to take an exclusive, non-blocking `flock` on `file`. `Ok(false)` means another open file
/// description holds it. The lock lives as long as the file stays open.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: the descriptor is owned by `file` and open for the duration of the call; flock does
    // not touch memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}
