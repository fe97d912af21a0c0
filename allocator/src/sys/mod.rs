//! Every piece of OS-facing `unsafe` in the crate: aligned and anonymous memory, the DRAM arena's
//! reserved mapping, memory-mapped segment copies, advisory file locks, resource counters, the C
//! heap's mmap threshold. The rest of the crate is safe code over these wrappers.

pub(crate) mod arena;
pub(crate) mod cache;
pub(crate) mod crc;
pub(crate) mod heap;
pub(crate) mod lock;
pub(crate) mod map;
pub(crate) mod mem;
pub(crate) mod usage;
