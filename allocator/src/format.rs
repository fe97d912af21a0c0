//! The on-disk layout (format version 1), little-endian throughout; `docs/pool-format.md` is the
//! prose version of this file. Encoding and decoding are pure functions so they can be fuzzed.

use crate::error::{Error, Result};
use crate::object::{ByteOffset, Durability, ObjectId, ObjectKind, ObjectMeta};

/// The eight bytes every pool starts with.
pub const MAGIC: [u8; 8] = *b"HETIERPL";
/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the encoded superblock (it lives in the first 4 KiB block of the pool).
pub const SUPERBLOCK_LEN: usize = 128;
/// Bytes reserved for the superblock at the start of the pool.
pub const SUPERBLOCK_AREA: u64 = 4096;
/// Bytes of one object-table entry; entries never straddle a 512 B sector.
pub const ENTRY_LEN: usize = 128;
/// Alignment and granularity of data extents.
pub const EXTENT_UNIT: u64 = 4096;
/// Checksum algorithm id for crc32c (Castagnoli), the only one version 1 uses.
pub const CHECKSUM_CRC32C: u32 = 1;
const ENTRY_MAGIC: u32 = u32::from_le_bytes(*b"OBJ1");

/// Round `x` up to a multiple of `unit` (a power of two), or `None` on overflow.
pub fn align_up(x: u64, unit: u64) -> Option<u64> {
    Some(x.checked_add(unit - 1)? & !(unit - 1))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The pool's fixed geometry, written once at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Random identity of this pool.
    pub uuid: [u8; 16],
    /// Size of every segment (the growth unit); a multiple of 4 KiB.
    pub segment_size: u64,
    /// Number of object-table slots.
    pub table_slots: u64,
    /// The pool never grows beyond this many bytes.
    pub max_pool_bytes: u64,
}

impl Superblock {
    /// Where the object table starts.
    pub fn table_offset(&self) -> u64 {
        SUPERBLOCK_AREA
    }

    /// Where slot `slot`'s entry lives.
    pub fn slot_offset(&self, slot: u64) -> u64 {
        SUPERBLOCK_AREA + slot * ENTRY_LEN as u64
    }

    /// Bytes of the object table.
    pub fn table_len(&self) -> u64 {
        self.table_slots * ENTRY_LEN as u64
    }

    /// Where the first data extent may start.
    pub fn data_offset(&self) -> u64 {
        // Geometry was validated (no overflow) before a Superblock is ever built from disk.
        (SUPERBLOCK_AREA + self.table_len()).div_ceil(EXTENT_UNIT) * EXTENT_UNIT
    }

    /// Check that the geometry is self-consistent.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::CorruptSuperblock { reason });
        if self.segment_size == 0 || !self.segment_size.is_multiple_of(EXTENT_UNIT) {
            return bad(format!(
                "segment size {} is not a positive multiple of 4096",
                self.segment_size
            ));
        }
        if self.table_slots == 0 || self.table_slots > (1 << 32) {
            return bad(format!("table slot count {} out of range 1..=2^32", self.table_slots));
        }
        let data_offset = self.data_offset();
        if self.segment_size < data_offset + EXTENT_UNIT {
            return bad(format!(
                "segment size {} cannot hold the superblock, a {}-slot table and one extent ({} B)",
                self.segment_size,
                self.table_slots,
                data_offset + EXTENT_UNIT
            ));
        }
        if self.max_pool_bytes < self.segment_size
            || !self.max_pool_bytes.is_multiple_of(self.segment_size)
        {
            return bad(format!(
                "max pool size {} is not a positive multiple of the segment size {}",
                self.max_pool_bytes, self.segment_size
            ));
        }
        Ok(())
    }

    /// Encode into the 128-byte on-disk form (checksum included).
    pub fn encode(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut b = [0u8; SUPERBLOCK_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SUPERBLOCK_LEN as u32).to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        b[32..40].copy_from_slice(&self.segment_size.to_le_bytes());
        b[40..48].copy_from_slice(&SUPERBLOCK_AREA.to_le_bytes());
        b[48..56].copy_from_slice(&self.table_slots.to_le_bytes());
        b[56..60].copy_from_slice(&(ENTRY_LEN as u32).to_le_bytes());
        b[60..64].copy_from_slice(&CHECKSUM_CRC32C.to_le_bytes());
        b[64..72].copy_from_slice(&self.data_offset().to_le_bytes());
        b[72..80].copy_from_slice(&self.max_pool_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&b[..SUPERBLOCK_LEN - 4]);
        b[SUPERBLOCK_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decode and verify: magic, then version (a newer layout cannot be checksummed by us), then
    /// checksum, then geometry.
    pub fn decode(b: &[u8]) -> Result<Superblock> {
        if b.len() < SUPERBLOCK_LEN {
            return Err(Error::Truncated {
                what: "superblock".into(),
                expected: SUPERBLOCK_LEN as u64,
                found: b.len() as u64,
            });
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&b[0..8]);
        if magic != MAGIC {
            return Err(Error::BadMagic { found: magic });
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        let stored = u32_at(b, SUPERBLOCK_LEN - 4);
        let computed = crc32c::crc32c(&b[..SUPERBLOCK_LEN - 4]);
        if stored != computed {
            return Err(Error::SuperblockChecksum { stored, computed });
        }
        let fixed = [
            ("superblock length", u64::from(u32_at(b, 12)), SUPERBLOCK_LEN as u64),
            ("table offset", u64_at(b, 40), SUPERBLOCK_AREA),
            ("entry length", u64::from(u32_at(b, 56)), ENTRY_LEN as u64),
            ("checksum algorithm", u64::from(u32_at(b, 60)), u64::from(CHECKSUM_CRC32C)),
        ];
        for (name, found, want) in fixed {
            if found != want {
                return Err(Error::CorruptSuperblock {
                    reason: format!("{name} {found}, expected {want}"),
                });
            }
        }
        if b[80..SUPERBLOCK_LEN - 4].iter().any(|&x| x != 0) {
            return Err(Error::CorruptSuperblock { reason: "reserved bytes are not zero".into() });
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let sb = Superblock {
            uuid,
            segment_size: u64_at(b, 32),
            table_slots: u64_at(b, 48),
            max_pool_bytes: u64_at(b, 72),
        };
        sb.validate()?;
        if u64_at(b, 64) != sb.data_offset() {
            return Err(Error::CorruptSuperblock {
                reason: format!("data offset {}, expected {}", u64_at(b, 64), sb.data_offset()),
            });
        }
        Ok(sb)
    }
}

/// Encode a live object's table entry (checksum included).
pub fn encode_entry(m: &ObjectMeta) -> [u8; ENTRY_LEN] {
    let mut b = [0u8; ENTRY_LEN];
    b[0..4].copy_from_slice(&ENTRY_MAGIC.to_le_bytes());
    b[4] = m.kind.tag();
    b[5] = m.durability.tag();
    b[8..16].copy_from_slice(&m.id.0.to_le_bytes());
    b[16..24].copy_from_slice(&m.len.to_le_bytes());
    b[24..32].copy_from_slice(&m.offset.0.to_le_bytes());
    b[32..40].copy_from_slice(&m.sequence.to_le_bytes());
    if let ObjectKind::EvalKey { galois_element, level, digit } = m.kind {
        b[40..48].copy_from_slice(&galois_element.to_le_bytes());
        b[48..52].copy_from_slice(&level.to_le_bytes());
        b[52..56].copy_from_slice(&digit.to_le_bytes());
    }
    b[56..60].copy_from_slice(&m.checksum.to_le_bytes());
    let crc = crc32c::crc32c(&b[..ENTRY_LEN - 4]);
    b[ENTRY_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decode one table slot: `Ok(None)` for a free (all-zero) slot, the object's record for a live
/// one, and a typed error for anything else. Extent bounds are checked by the caller.
pub fn decode_entry(slot: u64, b: &[u8]) -> Result<Option<ObjectMeta>> {
    let corrupt = |reason: String| Err(Error::CorruptEntry { slot, reason });
    if b.len() < ENTRY_LEN {
        return corrupt(format!("only {} of {ENTRY_LEN} bytes present", b.len()));
    }
    let b = &b[..ENTRY_LEN];
    if b.iter().all(|&x| x == 0) {
        return Ok(None);
    }
    let stored = u32_at(b, ENTRY_LEN - 4);
    let computed = crc32c::crc32c(&b[..ENTRY_LEN - 4]);
    if stored != computed {
        return corrupt(format!("checksum stored {stored:#010x}, computed {computed:#010x}"));
    }
    if u32_at(b, 0) != ENTRY_MAGIC {
        return corrupt(format!("bad entry magic {:#010x}", u32_at(b, 0)));
    }
    let kind = match b[4] {
        1 => ObjectKind::Ciphertext,
        2 => ObjectKind::EvalKey {
            galois_element: u64_at(b, 40),
            level: u32_at(b, 48),
            digit: u32_at(b, 52),
        },
        3 => ObjectKind::Plaintext,
        4 => ObjectKind::Blob,
        t => return corrupt(format!("unknown kind tag {t}")),
    };
    if !matches!(kind, ObjectKind::EvalKey { .. }) && b[40..56].iter().any(|&x| x != 0) {
        return corrupt("key parameters set on a non-key object".into());
    }
    let durability = match b[5] {
        1 => Durability::Durable,
        2 => Durability::Scratch,
        t => return corrupt(format!("unknown durability tag {t}")),
    };
    if b[6..8].iter().chain(&b[60..ENTRY_LEN - 4]).any(|&x| x != 0) {
        return corrupt("reserved bytes are not zero".into());
    }
    Ok(Some(ObjectMeta {
        id: ObjectId(u64_at(b, 8)),
        kind,
        durability,
        len: u64_at(b, 16),
        checksum: u32_at(b, 56),
        offset: ByteOffset(u64_at(b, 24)),
        sequence: u64_at(b, 32),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> Superblock {
        Superblock {
            uuid: [7; 16],
            segment_size: 1 << 20,
            table_slots: 64,
            max_pool_bytes: 8 << 20,
        }
    }

    #[test]
    fn superblock_round_trips_and_every_byte_is_protected() {
        let s = sb();
        let enc = s.encode();
        assert_eq!(Superblock::decode(&enc).unwrap(), s);
        for i in 0..SUPERBLOCK_LEN {
            let mut e = enc;
            e[i] ^= 0x10;
            assert!(Superblock::decode(&e).is_err(), "flip at byte {i} undetected");
        }
    }

    #[test]
    fn entry_round_trips_and_every_byte_is_protected() {
        let m = ObjectMeta {
            id: ObjectId(42),
            kind: ObjectKind::EvalKey { galois_element: 5, level: 3, digit: 1 },
            durability: Durability::Durable,
            len: 12345,
            checksum: 0xdead_beef,
            offset: ByteOffset(8192),
            sequence: 9,
        };
        let enc = encode_entry(&m);
        assert_eq!(decode_entry(0, &enc).unwrap(), Some(m));
        assert_eq!(decode_entry(0, &[0u8; ENTRY_LEN]).unwrap(), None);
        for i in 0..ENTRY_LEN {
            let mut e = enc;
            e[i] ^= 0x01;
            assert!(decode_entry(3, &e).is_err(), "flip at byte {i} undetected");
        }
    }

    #[test]
    fn newer_version_is_reported_as_such() {
        let mut enc = sb().encode();
        enc[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Superblock::decode(&enc),
            Err(Error::UnsupportedVersion { found: 2, supported: 1 })
        ));
    }
}
