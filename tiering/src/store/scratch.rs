//! Scratch buffers borrowed from the store's DRAM budget (see `TieredStore::scratch`): what
//! a computation needs beside its pinned operands — key-switch digits, a degree-2 product,
//! running sums — charged to the same budget, so the whole working set stays inside it.

use std::ops::{Deref, DerefMut};

use super::guard::BlockWriter;
use super::state::{footprint, make_room, schedule_prefetch, Inner, Need, Room};
use crate::error::{Error, Result};

/// Reserves a block of `len` bytes like a pin. With `reservation` (a live
/// [`ScratchReserve`]'s id with that much unlent), the bytes come out of it: lent back to
/// the budget and taken again under one lock, so nothing is evicted unless the arena cannot
/// place the block (see [`super::TieredStore::reserve_scratch`]).
pub(super) fn alloc_block(
    inner: &Inner,
    len: u64,
    zero: bool,
    reservation: Option<u64>,
) -> Result<BlockWriter<'_>> {
    if len == 0 {
        return Err(Error::EmptyObject { id: None });
    }
    let fp = footprint(len);
    let mut st = inner.state.lock();
    let lent = reservation.is_some_and(|r| st.lend(r, fp));
    let block = match make_room(inner, &mut st, None, len, Need::Demand) {
        Ok(Room::Reserved(block)) => Ok(block),
        Ok(Room::Refused) => Err(Error::PinnedSetTooLarge {
            id: None,
            requested: len,
            pinned: st.pinned_bytes,
            budget: inner.budget,
        }),
        Err(e) => Err(e),
    };
    let mut block = match block {
        Ok(b) => b,
        Err(e) => {
            if let (true, Some(r)) = (lent, reservation) {
                st.take_back(r, fp);
            }
            return Err(e);
        }
    };
    st.pinned_bytes += fp;
    drop(st);
    if zero {
        // Only bytes an earlier block used are written: fresh arena pages are still zero.
        block.zero_fill();
    }
    let reservation = reservation.filter(|_| lent);
    Ok(BlockWriter { inner, block: Some(block), len, scratch: false, reservation })
}

/// A scratch buffer (see [`super::TieredStore::scratch`]), out of `reservation` when it has
/// room.
pub(super) fn borrow(
    inner: &Inner,
    len: u64,
    zero: bool,
    reservation: Option<u64>,
) -> Result<ScratchBuffer<'_>> {
    let writer = scratch_block(inner, len, zero, reservation)?;
    Ok(ScratchBuffer { inner, len, reservation, writer: Some(writer) })
}

/// A block for a scratch buffer, counted in the scratch stats.
fn scratch_block(
    inner: &Inner,
    len: u64,
    zero: bool,
    reservation: Option<u64>,
) -> Result<BlockWriter<'_>> {
    let mut writer = alloc_block(inner, len, zero, reservation)?;
    writer.scratch = true;
    let mut st = inner.state.lock();
    if reservation.is_some() && writer.reservation.is_none() {
        st.stats.scratch_beyond_reserve += 1;
    }
    st.stats.scratch_in_use += footprint(len);
    st.stats.scratch_peak = st.stats.scratch_peak.max(st.stats.scratch_in_use);
    Ok(writer)
}

/// Holds `bytes` of the budget for scratch (see [`super::TieredStore::reserve_scratch`]).
pub(super) fn reserve(inner: &Inner, bytes: u64) -> Result<ScratchReserve<'_>> {
    let fp = footprint(bytes);
    let mut st = inner.state.lock();
    let id = st.next_reservation;
    st.next_reservation += 1;
    if fp > 0 {
        match make_room(inner, &mut st, None, bytes, Need::Demand)? {
            // Only the bytes are kept: each buffer is placed in the arena when lent (the arena
            // has eight times the budget in address space, so placing rarely fails).
            Room::Reserved(block) => drop(block),
            Room::Refused => {
                return Err(Error::PinnedSetTooLarge {
                    id: None,
                    requested: fp,
                    pinned: st.pinned_bytes,
                    budget: inner.budget,
                })
            }
        }
        st.pinned_bytes += fp;
    }
    st.scratch_reserved += fp;
    st.reservations.insert(id, fp);
    Ok(ScratchReserve { inner, id, bytes: fp })
}

/// Budget held for scratch by [`super::TieredStore::reserve_scratch`] until dropped; hands out
/// [`ScratchBuffer`]s from it. Buffers may outlive it: they are then charged to the budget
/// like [`super::TieredStore::scratch`]'s until they drop.
pub struct ScratchReserve<'a> {
    inner: &'a Inner,
    id: u64,
    bytes: u64,
}

impl<'a> ScratchReserve<'a> {
    /// Bytes reserved (whole pages).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// A scratch buffer of `len` bytes (unspecified contents, as [`super::TieredStore::scratch`])
    /// out of the reservation: nothing is evicted unless the arena cannot place it. When the
    /// reservation has not that much unlent, it is made room for like [`super::TieredStore::scratch`]
    /// (counted in [`crate::StoreStats::scratch_beyond_reserve`]).
    pub fn scratch(&self, len: u64) -> Result<ScratchBuffer<'a>> {
        borrow(self.inner, len, false, Some(self.id))
    }

    /// Like [`Self::scratch`], with every byte zero.
    pub fn scratch_zeroed(&self, len: u64) -> Result<ScratchBuffer<'a>> {
        borrow(self.inner, len, true, Some(self.id))
    }
}

impl Drop for ScratchReserve<'_> {
    fn drop(&mut self) {
        let inner = self.inner;
        let mut st = inner.state.lock();
        let unlent = st.reservations.remove(&self.id).unwrap_or(0);
        st.used -= unlent;
        st.pinned_bytes -= unlent;
        st.scratch_reserved -= self.bytes;
        inner.cond.notify_all();
        schedule_prefetch(inner, &mut st);
    }
}

impl std::fmt::Debug for ScratchReserve<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchReserve").field("bytes", &self.bytes).finish()
    }
}

/// A DRAM buffer charged to the store's budget for as long as it lives, never stored: its
/// bytes go back to the budget and its pages to the arena (for reuse at any size, without
/// faults) on drop. Use it in place as `[u8]` or as RNS words (`AsRef<[u64]>`/`AsMut<[u64]>`).
///
/// A buffer a computation needs in one phase only can be [released](Self::release) between
/// its uses: its bytes then go back to the budget (to prefetching) and it is
/// [reacquired](Self::reacquire) for the next use.
pub struct ScratchBuffer<'a> {
    inner: &'a Inner,
    len: u64,
    /// The reservation it was first lent from, which a reacquire asks again.
    reservation: Option<u64>,
    /// The block; `None` while released.
    writer: Option<BlockWriter<'a>>,
}

impl ScratchBuffer<'_> {
    /// Length in bytes (also while released).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the buffer is empty (never true: empty buffers are rejected).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the buffer's bytes are back in the budget ([`Self::release`]).
    pub fn is_released(&self) -> bool {
        self.writer.is_none()
    }

    /// Gives the bytes back to the budget until [`Self::reacquire`]; the contents are lost and
    /// the buffer holds no words meanwhile. Nothing happens if it is released already.
    pub fn release(&mut self) {
        self.writer = None;
    }

    /// Takes the buffer's length out of the budget again after [`Self::release`], making room
    /// as [`super::TieredStore::scratch`] does (evicting unpinned objects); the contents are
    /// unspecified. Fails as `scratch` does when the pins leave no room: the buffer then stays
    /// released. Nothing happens if it holds its bytes already.
    pub fn reacquire(&mut self) -> Result<()> {
        if self.writer.is_none() {
            self.writer = Some(scratch_block(self.inner, self.len, false, self.reservation)?);
        }
        Ok(())
    }

    /// The bytes as `u64` words (`len / 8` of them; none while released).
    pub fn as_u64s(&self) -> &[u64] {
        self.writer.as_ref().map_or(&[], |w| w.as_ref())
    }

    /// The bytes as mutable `u64` words (`len / 8` of them; none while released).
    pub fn as_u64s_mut(&mut self) -> &mut [u64] {
        self.writer.as_mut().map_or(&mut [], |w| w.as_u64s_mut())
    }
}

impl Deref for ScratchBuffer<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.writer.as_deref().unwrap_or(&[])
    }
}

impl DerefMut for ScratchBuffer<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.writer.as_mut().map_or(&mut [], |w| w.as_bytes_mut())
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
        f.debug_struct("ScratchBuffer")
            .field("len", &self.len)
            .field("released", &self.is_released())
            .finish()
    }
}
