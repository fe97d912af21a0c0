//! Identifier and counter newtypes shared by every module.

use serde::{Deserialize, Serialize};

/// Identity of one immutable object: the allocator's id, shared by pool, store and trace.
pub use hetier_allocator::ObjectId;

/// Serde for an [`ObjectId`] as a plain number (the allocator type carries no serde).
pub mod serde_id {
    use super::ObjectId;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes the id as its number.
    pub fn serialize<S: Serializer>(id: &ObjectId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(id.0)
    }

    /// Deserializes a number into an id.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        u64::deserialize(d).map(ObjectId)
    }
}

/// Serde for a list of [`ObjectId`]s as a JSON array of numbers.
pub mod serde_ids {
    use super::ObjectId;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Serializes the ids as numbers.
    pub fn serialize<S: Serializer>(ids: &[ObjectId], s: S) -> Result<S::Ok, S::Error> {
        let raw: Vec<u64> = ids.iter().map(|i| i.0).collect();
        raw.serialize(s)
    }

    /// Deserializes numbers into ids.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ObjectId>, D::Error> {
        Vec::<u64>::deserialize(d).map(|v| v.into_iter().map(ObjectId).collect())
    }
}

/// Logical time: the index of an access in the order the store (or a trace) saw it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Tick(pub u64);

/// Identity of one request's stream of accesses (see [`crate::TieredStore::stream`]): each
/// stream has its own hinted plan, and the planned policy merges the plans of open streams.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamId(pub u64);

impl StreamId {
    /// The stream of hints and pins made outside any open stream scope.
    pub const DEFAULT: StreamId = StreamId(0);
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
