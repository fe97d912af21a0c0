//! hetier-tiering: a store of immutable objects that keeps hot ones in DRAM under a hard
//! budget and spills cold ones to the persistent-memory pool.
