//! Scratch buffers borrowed from the store's DRAM budget (see `TieredStore::scratch`): what
//! a computation needs beside its pinned operands — key-switch digits, a degree-2 product,
//! running sums — charged to the same budget, so the whole working set stays inside it.

use std::ops::{Deref, DerefMut};

use super::guard::BlockWriter;

/// A DRAM buffer charged to the store's budget for as long as it lives, never stored: its
/// bytes go back to the budget and its pages to the arena (for reuse at any size, without
/// faults) on drop. Use it in place as `[u8]` or as RNS words (`AsRef<[u64]>`/`AsMut<[u64]>`).
pub struct ScratchBuffer<'a> {
    pub(super) writer: BlockWriter<'a>,
}

impl ScratchBuffer<'_> {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.writer.len()
    }

    /// Whether the buffer is empty (never true: empty buffers are rejected).
    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    /// The bytes as `u64` words (`len / 8` of them).
    pub fn as_u64s(&self) -> &[u64] {
        self.writer.as_ref()
    }

    /// The bytes as mutable `u64` words (`len / 8` of them).
    pub fn as_u64s_mut(&mut self) -> &mut [u64] {
        self.writer.as_u64s_mut()
    }
}

impl Deref for ScratchBuffer<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.writer
    }
}

impl DerefMut for ScratchBuffer<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.writer.as_bytes_mut()
    }
}

impl AsRef<[u64]> for ScratchBuffer<'_> {
    fn as_ref(&self) -> &[u64] {
        self.as_u64s()
    }
}

impl AsMut<[u64]> for ScratchBuffer<'_> {
    fn as_mut(&mut self) -> &mut [u64] {
        self.as_u64s_mut()
    }
}

impl std::fmt::Debug for ScratchBuffer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchBuffer").field("len", &self.len()).finish()
    }
}
