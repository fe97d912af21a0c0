//! hetier-allocator: a DRAM tier under a hard byte budget and a crash-consistent,
//! checksummed persistent-memory pool. It knows bytes, tiers and durability — nothing about HE.
