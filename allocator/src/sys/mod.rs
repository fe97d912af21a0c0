//! Every piece of OS-facing `unsafe` in the crate: aligned and anonymous memory, memory-mapped
//! segment copies, advisory file locks. The rest of the crate is safe code over these wrappers.

pub(crate) mod crc;
pub(crate) mod lock;
pub(crate) mod map;
pub(crate) mod mem;
