//! Making a pool's files cold: written back and dropped from the kernel's page cache, so the
//! next process that maps them reads every page from the device (a fair start for measuring
//! kernel paging, and for calibrating page-fault reads).

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};
use crate::sys::cache::fadvise_dontneed;

/// Writes back and drops from the page cache every regular file at `path` (a file, or the
/// files directly in a directory such as a pool). Pages some process still maps stay cached.
pub fn drop_page_cache(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?;
    let files: Vec<std::path::PathBuf> = if meta.is_dir() {
        std::fs::read_dir(path)
            .map_err(|e| Error::io("read_dir", path, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    for f in files {
        let file = File::open(&f).map_err(|e| Error::io("open", &f, e))?;
        // Dirty pages cannot be dropped: write them back first.
        file.sync_data().map_err(|e| Error::io("fdatasync", &f, e))?;
        fadvise_dontneed(&file).map_err(|e| Error::io("posix_fadvise", &f, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_a_directory_and_refuses_a_missing_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 1 << 16]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        drop_page_cache(dir.path()).unwrap();
        drop_page_cache(&dir.path().join("a")).unwrap();
        assert!(drop_page_cache(&dir.path().join("missing")).is_err());
    }
}
