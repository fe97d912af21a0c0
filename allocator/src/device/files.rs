//! The pool directory: numbered segment files of one fixed size, created 0600, plus a `LOCK` file
//! held with an exclusive `flock` for as long as the pool is open.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sys::lock;

const LOCK_NAME: &str = "LOCK";

/// The open segment files of one pool directory, with the writer lock held.
#[derive(Debug)]
pub(crate) struct SegmentFiles {
    dir: PathBuf,
    _lock: File,
    files: Vec<(PathBuf, File)>,
}

fn segment_path(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("segment-{index:06}.hpool"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io("open dir", dir, e))?;
    d.sync_all().map_err(|e| Error::io("fsync dir", dir, e))
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_NAME);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io("open lock", &path, e))?;
    if !lock::try_lock_exclusive(&f).map_err(|e| Error::io("flock", &path, e))? {
        let mut s = String::new();
        let holder_pid = f.read_to_string(&mut s).ok().and_then(|_| s.trim().parse().ok());
        return Err(Error::Locked { path, holder_pid });
    }
    // Record who holds the lock so a second writer's error can name us.
    let pid = std::process::id();
    f.set_len(0)
        .and_then(|_| f.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(f, "{pid}"))
        .map_err(|e| Error::io("write lock", &path, e))?;
    Ok(f)
}

impl SegmentFiles {
    /// Create a new pool directory (or an empty existing one) with one segment of `seg_size`.
    pub(crate) fn create(dir: &Path, seg_size: u64) -> Result<SegmentFiles> {
        fs::create_dir_all(dir).map_err(|e| Error::io("create dir", dir, e))?;
        let lock = take_lock(dir)?;
        if segment_path(dir, 0).exists() {
            return Err(Error::AlreadyExists { path: dir.to_path_buf() });
        }
        let mut files = SegmentFiles { dir: dir.to_path_buf(), _lock: lock, files: Vec::new() };
        files.add_segment(seg_size)?;
        Ok(files)
    }

    /// Open an existing pool directory: lock it and open every segment file in order.
    pub(crate) fn open(dir: &Path) -> Result<SegmentFiles> {
        if !dir.is_dir() {
            return Err(Error::NoPool { path: dir.to_path_buf() });
        }
        let lock = take_lock(dir)?;
        let mut files = Vec::new();
        loop {
            let path = segment_path(dir, files.len());
            if !path.exists() {
                break;
            }
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open segment", &path, e))?;
            files.push((path, f));
        }
        if files.is_empty() {
            return Err(Error::NoPool { path: dir.to_path_buf() });
        }
        // A gap in the numbering would let the pool silently shrink and later collide on growth.
        let entries = fs::read_dir(dir).map_err(|e| Error::io("read dir", dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let index = name
                .to_str()
                .and_then(|n| n.strip_prefix("segment-"))
                .and_then(|n| n.strip_suffix(".hpool"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(i) = index {
                if i >= files.len() {
                    return Err(Error::MissingSegment {
                        path: segment_path(dir, files.len()),
                        later: entry.path(),
                    });
                }
            }
        }
        Ok(SegmentFiles { dir: dir.to_path_buf(), _lock: lock, files })
    }

    /// Append one zero-filled segment file of `seg_size` bytes and make its existence durable.
    pub(crate) fn add_segment(&mut self, seg_size: u64) -> Result<()> {
        let path = segment_path(&self.dir, self.files.len());
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("create segment", &path, e))?;
        f.set_len(seg_size).map_err(|e| Error::io("set_len", &path, e))?;
        f.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        sync_dir(&self.dir)?;
        self.files.push((path, f));
        Ok(())
    }

    /// Read up to `len` bytes from the start of segment 0 (the superblock and table live there).
    pub(crate) fn read_head(&self, len: usize) -> Result<Vec<u8>> {
        let (path, f) = &self.files[0];
        let flen = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
        let n = (len as u64).min(flen) as usize;
        let mut buf = vec![0u8; n];
        f.read_exact_at(&mut buf, 0).map_err(|e| Error::io("pread", path, e))?;
        Ok(buf)
    }

    /// Check that every segment file is exactly `seg_size` long (shorter means truncated, which
    /// would otherwise be a SIGBUS waiting in the mapping).
    pub(crate) fn check_lengths(&self, seg_size: u64) -> Result<()> {
        for (path, f) in &self.files {
            let found = f.metadata().map_err(|e| Error::io("stat", path, e))?.len();
            if found < seg_size {
                return Err(Error::Truncated {
                    what: path.display().to_string(),
                    expected: seg_size,
                    found,
                });
            }
        }
        Ok(())
    }

    /// Number of segments.
    pub(crate) fn count(&self) -> usize {
        self.files.len()
    }

    /// The `index`-th segment's path and file.
    pub(crate) fn get(&self, index: usize) -> (&Path, &File) {
        let (p, f) = &self.files[index];
        (p, f)
    }
}
