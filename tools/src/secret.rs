//! The client's secret key on the command line: random from the OS unless the user gives a
//! seed, kept in a key file of mode 0600 outside the pool (the pool holds public material
//! only), and reused by later runs over the same pool.
//!
//! The key file sits beside the pool directory as `<dir>.secret` unless `--key-file` names
//! another path. It holds the 32-byte seed the secret key is derived from, as hex after a
//! format line. A key file readable or writable by anyone but its owner is refused.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hetier_he::ckks::{os_seed, Seed};
use zeroize::Zeroizing;

const FORMAT_LINE: &str = "hetier-secret-key/1";

/// Where the client's secret key comes from (shared by every subcommand that encrypts).
#[derive(Args, Debug, Clone, Default)]
pub struct SecretArgs {
    /// Derive the secret key from this seed (64 hex digits) instead of a key file. The key is
    /// then NOT secret: for reproducible tests and benchmarks only.
    #[arg(long)]
    pub sk_seed: Option<String>,
    /// The client's key file (default: `<dir>.secret` beside the pool directory). Created
    /// with mode 0600 and a random key if absent; refused if others can read or write it.
    #[arg(long, conflicts_with = "sk_seed")]
    pub key_file: Option<PathBuf>,
}

/// The client's secret-key seed and where it came from.
pub struct ClientSecret {
    /// Seed of the secret key (zeroed on drop).
    pub seed: Zeroizing<Seed>,
    /// What the user is told about it.
    pub origin: Origin,
}

/// Where a [`ClientSecret`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `--sk-seed`: a public, reproducible key.
    InsecureSeed,
    /// A key file created by this run.
    Created(PathBuf),
    /// An existing key file.
    Loaded(PathBuf),
}

impl Origin {
    /// The key file, if the secret came from one.
    pub fn key_file(&self) -> Option<&Path> {
        match self {
            Origin::InsecureSeed => None,
            Origin::Created(p) | Origin::Loaded(p) => Some(p),
        }
    }
}

/// The default key file of the pool in `pool_dir`: `<dir>.secret` in the same parent.
pub fn default_key_file(pool_dir: &Path) -> PathBuf {
    let mut name: OsString = pool_dir.file_name().map_or_else(|| "pool".into(), |n| n.to_owned());
    name.push(".secret");
    pool_dir.parent().map_or_else(|| PathBuf::from(&name), |p| p.join(&name))
}

impl SecretArgs {
    /// Resolves the secret for the pool in `pool_dir`: the seed flag (with a loud warning on
    /// stderr), else the key file, created with a fresh OS-random key when absent.
    pub fn resolve(&self, pool_dir: &Path) -> Result<ClientSecret> {
        if let Some(hex) = &self.sk_seed {
            let seed = parse_seed(hex)?;
            eprintln!(
                "WARNING: the secret key of this run comes from --sk-seed and is NOT secret: \
                 anyone with the seed can decrypt. Use it for reproducible tests and benchmarks \
                 only; without it a random key is kept in a 0600 key file."
            );
            return Ok(ClientSecret { seed, origin: Origin::InsecureSeed });
        }
        let path = self.key_file.clone().unwrap_or_else(|| default_key_file(pool_dir));
        if path.starts_with(pool_dir) {
            bail!(
                "key file {} is inside the pool directory {}: the pool holds public material \
                 only; put the key file elsewhere",
                path.display(),
                pool_dir.display()
            );
        }
        match load(&path)? {
            Some(seed) => Ok(ClientSecret { seed, origin: Origin::Loaded(path) }),
            None => {
                let seed = Zeroizing::new(os_seed());
                create(&path, &seed)?;
                eprintln!("created a new secret key in {} (mode 0600)", path.display());
                Ok(ClientSecret { seed, origin: Origin::Created(path) })
            }
        }
    }
}

/// Parses a 64-hex-digit seed.
pub fn parse_seed(s: &str) -> Result<Zeroizing<Seed>> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        bail!("a secret-key seed is 64 hex digits, got {} characters", s.len());
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .with_context(|| format!("the seed is not hex at digit {}", 2 * i))?;
    }
    Ok(out)
}

/// Reads the key file at `path`; `None` when it does not exist. Refuses one that group or
/// others can access, and one that is not a regular file.
fn load(path: &Path) -> Result<Option<Zeroizing<Seed>>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading key file {}", path.display())),
    };
    if !meta.file_type().is_file() {
        bail!("key file {} is not a regular file", path.display());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "key file {} has mode {mode:04o}: a secret key must be readable by its owner only \
             (chmod 600 {})",
            path.display(),
            path.display()
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading key file {}", path.display()))?,
    );
    let mut lines = text.lines();
    if lines.next() != Some(FORMAT_LINE) {
        bail!("key file {} does not start with {FORMAT_LINE:?}", path.display());
    }
    let hex = lines.next().unwrap_or("");
    let seed = parse_seed(hex).with_context(|| format!("key file {}", path.display()))?;
    Ok(Some(seed))
}

/// Creates the key file (never overwriting one) with mode 0600, durably.
fn create(path: &Path, seed: &Seed) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating directory {}", parent.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating key file {}", path.display()))?;
    let hex: Zeroizing<String> = Zeroizing::new(seed.iter().map(|b| format!("{b:02x}")).collect());
    let text = Zeroizing::new(format!("{FORMAT_LINE}\n{}\n", hex.as_str()));
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing key file {}", path.display()))?;
    // The file's directory entry must be durable too, or a crash leaves a pool of keys whose
    // secret is lost.
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).ok();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_file_is_0600_random_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let args = SecretArgs::default();
        let a = args.resolve(&pool).unwrap();
        let path = dir.path().join("pool.secret");
        assert_eq!(a.origin, Origin::Created(path.clone()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let b = args.resolve(&pool).unwrap();
        assert_eq!(b.origin, Origin::Loaded(path.clone()));
        assert_eq!(*a.seed, *b.seed);
        // Another pool gets another key.
        let c = args.resolve(&dir.path().join("other")).unwrap();
        assert_ne!(*a.seed, *c.seed);
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        SecretArgs::default().resolve(&pool).unwrap();
        let path = default_key_file(&pool);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretArgs::default().resolve(&pool).err().unwrap().to_string();
        assert!(err.contains("mode 0644"), "{err}");
    }

    #[test]
    fn a_key_file_inside_the_pool_or_garbled_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let inside = SecretArgs { key_file: Some(pool.join("k")), ..Default::default() };
        assert!(inside.resolve(&pool).is_err());
        let path = dir.path().join("bad.secret");
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap()
            .write_all(b"hetier-secret-key/1\nzz\n")
            .unwrap();
        let bad = SecretArgs { key_file: Some(path), ..Default::default() };
        assert!(bad.resolve(&pool).is_err());
    }

    #[test]
    fn seeds_parse_only_as_64_hex_digits() {
        assert_eq!(*parse_seed(&"01".repeat(32)).unwrap(), [1u8; 32]);
        assert!(parse_seed("01").is_err());
        assert!(parse_seed(&"g1".repeat(32)).is_err());
        assert!(parse_seed(&"é".repeat(32)).is_err());
    }
}
