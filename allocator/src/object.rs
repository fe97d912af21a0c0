//! Object identity, kind and durability: the record the pool keeps for every stored byte string.

use std::fmt;

/// The caller-chosen identity of a pooled object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(pub u64);

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl From<u64> for ObjectId {
    fn from(v: u64) -> Self {
        ObjectId(v)
    }
}

/// What an object holds; the pool stores it so tools can explain a pool without the HE runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// A ciphertext (usually scratch).
    Ciphertext,
    /// One digit of an evaluation (relinearisation or Galois) key at a level.
    EvalKey {
        /// The Galois element the key switches for (rotation keys); 0 for relinearisation.
        galois_element: u64,
        /// The level the key is prepared for.
        level: u32,
        /// The decomposition digit this object holds.
        digit: u32,
    },
    /// An encoded plaintext.
    Plaintext,
    /// Anything else.
    Blob,
}

impl ObjectKind {
    /// The on-disk tag for this kind.
    pub(crate) fn tag(self) -> u8 {
        match self {
            ObjectKind::Ciphertext => 1,
            ObjectKind::EvalKey { .. } => 2,
            ObjectKind::Plaintext => 3,
            ObjectKind::Blob => 4,
        }
    }
}

/// Whether an object must survive a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Flushed before `put` returns; survives restart and crash.
    Durable,
    /// Never flushed; dropped (and reported) when the pool is reopened.
    Scratch,
}

impl Durability {
    /// The on-disk tag for this class.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Durability::Durable => 1,
            Durability::Scratch => 2,
        }
    }
}

/// A byte offset inside the pool's linear address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteOffset(pub u64);

/// Everything the pool records about one live object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's id.
    pub id: ObjectId,
    /// What it holds.
    pub kind: ObjectKind,
    /// Its durability class.
    pub durability: Durability,
    /// Its length in bytes.
    pub len: u64,
    /// crc32c of its bytes.
    pub checksum: u32,
    /// Where its extent starts (4 KiB aligned).
    pub offset: ByteOffset,
    /// The write sequence number; higher means written later.
    pub sequence: u64,
}
