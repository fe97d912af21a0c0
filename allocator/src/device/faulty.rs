//! An in-memory device for tests that keeps durable and volatile bytes apart, can fail chosen
//! operations, and simulates a crash: unflushed sectors are dropped, or — with tearing on — each
//! unflushed 512 B sector independently survives or not.

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{check_bounds, Device};
use crate::error::{Error, Result};

/// Sector size: the unit that survives a crash atomically.
pub const SECTOR: u64 = 512;

/// What the [`FaultyDevice`] should do wrong, and when.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultConfig {
    /// Fail the write with this 0-based index (and only that one) with an injected fault.
    pub fail_write: Option<u64>,
    /// Fail the flush with this 0-based index (and only that one) with an injected fault.
    pub fail_flush: Option<u64>,
    /// Crash instead of performing the flush with this 0-based index.
    pub crash_at_flush: Option<u64>,
    /// At a crash, let each unflushed sector survive with probability 1/2 instead of dropping all.
    pub torn: bool,
    /// Seed for the tearing decisions.
    pub seed: u64,
}

#[derive(Debug)]
struct Inner {
    durable: Vec<u8>,
    live: Vec<u8>,
    dirty: BTreeSet<u64>,
    writes: u64,
    flushes: u64,
    crashed: Option<Vec<u8>>,
    cfg: FaultConfig,
    rng: u64,
}

impl Inner {
    fn next_bit(&mut self) -> bool {
        // xorshift64*: deterministic per seed, good enough to choose surviving sectors.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 63) == 1
    }

    fn crash(&mut self) -> Vec<u8> {
        let mut image = self.durable.clone();
        if self.cfg.torn {
            let dirty: Vec<u64> = self.dirty.iter().copied().collect();
            for s in dirty {
                if self.next_bit() {
                    let a = (s * SECTOR) as usize;
                    let b = (a + SECTOR as usize).min(image.len());
                    image[a..b].copy_from_slice(&self.live[a..b]);
                }
            }
        }
        self.dirty.clear();
        self.crashed = Some(image.clone());
        image
    }
}

/// A shareable handle to an in-memory fault-injecting device; clones see the same bytes.
#[derive(Clone, Debug)]
pub struct FaultyDevice {
    inner: Arc<Mutex<Inner>>,
}

impl FaultyDevice {
    /// An all-zero device of `len` bytes.
    pub fn new(len: u64, cfg: FaultConfig) -> FaultyDevice {
        FaultyDevice::from_image(vec![0u8; len as usize], cfg)
    }

    /// A device whose durable and live contents are `image` (e.g. the image left by a crash).
    pub fn from_image(image: Vec<u8>, cfg: FaultConfig) -> FaultyDevice {
        let rng = cfg.seed | 1;
        FaultyDevice {
            inner: Arc::new(Mutex::new(Inner {
                durable: image.clone(),
                live: image,
                dirty: BTreeSet::new(),
                writes: 0,
                flushes: 0,
                crashed: None,
                cfg,
                rng,
            })),
        }
    }

    /// Writes issued so far.
    pub fn write_count(&self) -> u64 {
        self.inner.lock().writes
    }

    /// Flushes issued so far (including failed ones and the one that crashed).
    pub fn flush_count(&self) -> u64 {
        self.inner.lock().flushes
    }

    /// Simulate a crash now (unless one already happened) and return what survived.
    pub fn crash(&self) -> Vec<u8> {
        let mut g = self.inner.lock();
        match &g.crashed {
            Some(img) => img.clone(),
            None => g.crash(),
        }
    }

    /// Switch torn crashes on or off (with a new seed) for the next crash.
    pub fn set_tearing(&self, torn: bool, seed: u64) {
        let mut g = self.inner.lock();
        g.cfg.torn = torn;
        g.cfg.seed = seed;
        g.rng = seed | 1;
    }

    /// Whether the device has crashed.
    pub fn has_crashed(&self) -> bool {
        self.inner.lock().crashed.is_some()
    }

    /// The bytes a reader sees now (durable plus unflushed writes).
    pub fn live_image(&self) -> Vec<u8> {
        self.inner.lock().live.clone()
    }

    /// The bytes that are durable now.
    pub fn durable_image(&self) -> Vec<u8> {
        self.inner.lock().durable.clone()
    }
}

impl Device for FaultyDevice {
    fn len(&self) -> u64 {
        self.inner.lock().live.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let g = self.inner.lock();
        if g.crashed.is_some() {
            return Err(Error::Crashed);
        }
        check_bounds(offset, buf.len(), g.live.len() as u64)?;
        let a = offset as usize;
        buf.copy_from_slice(&g.live[a..a + buf.len()]);
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut g = self.inner.lock();
        if g.crashed.is_some() {
            return Err(Error::Crashed);
        }
        let index = g.writes;
        g.writes += 1;
        if g.cfg.fail_write == Some(index) {
            return Err(Error::InjectedFault { op: "write", index });
        }
        check_bounds(offset, data.len(), g.live.len() as u64)?;
        let a = offset as usize;
        g.live[a..a + data.len()].copy_from_slice(data);
        if !data.is_empty() {
            let first = offset / SECTOR;
            let last = (offset + data.len() as u64 - 1) / SECTOR;
            g.dirty.extend(first..=last);
        }
        Ok(())
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        let mut g = self.inner.lock();
        if g.crashed.is_some() {
            return Err(Error::Crashed);
        }
        let index = g.flushes;
        g.flushes += 1;
        if g.cfg.crash_at_flush == Some(index) {
            g.crash();
            return Err(Error::Crashed);
        }
        if g.cfg.fail_flush == Some(index) {
            return Err(Error::InjectedFault { op: "flush", index });
        }
        check_bounds(offset, usize::try_from(len).unwrap_or(usize::MAX), g.live.len() as u64)?;
        if len == 0 {
            return Ok(());
        }
        let first = offset / SECTOR;
        let last = (offset + len - 1) / SECTOR;
        let sectors: Vec<u64> = g.dirty.range(first..=last).copied().collect();
        let dev_len = g.live.len();
        for s in sectors {
            let a = (s * SECTOR) as usize;
            let b = (a + SECTOR as usize).min(dev_len);
            let Inner { durable, live, .. } = &mut *g;
            durable[a..b].copy_from_slice(&live[a..b]);
            g.dirty.remove(&s);
        }
        Ok(())
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        let mut g = self.inner.lock();
        if g.crashed.is_some() {
            return Err(Error::Crashed);
        }
        let n = new_len as usize;
        if n > g.live.len() {
            g.live.resize(n, 0);
            g.durable.resize(n, 0);
        }
        Ok(())
    }

    fn io_chunk(&self) -> usize {
        64 << 10
    }

    fn name(&self) -> &'static str {
        "faulty"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_drops_unflushed_and_keeps_flushed() {
        let d = FaultyDevice::new(4096, FaultConfig::default());
        d.write_at(0, &[1u8; 600]).unwrap();
        d.flush(0, 600).unwrap();
        d.write_at(1024, &[2u8; 100]).unwrap();
        assert_eq!(d.live_image()[1024], 2);
        let img = d.crash();
        assert!(img[..600].iter().all(|&b| b == 1));
        assert_eq!(img[1024], 0);
        assert!(matches!(d.read_at(0, &mut [0u8; 1]), Err(Error::Crashed)));
    }

    #[test]
    fn flush_covers_only_its_range() {
        let d = FaultyDevice::new(8192, FaultConfig::default());
        d.write_at(0, &[1u8; 512]).unwrap();
        d.write_at(4096, &[3u8; 512]).unwrap();
        d.flush(4096, 512).unwrap();
        let img = d.crash();
        assert_eq!(img[0], 0);
        assert_eq!(img[4096], 3);
    }

    #[test]
    fn torn_crash_keeps_whole_sectors_only() {
        let mut saw_partial = false;
        for seed in 0..32 {
            let cfg = FaultConfig { torn: true, seed, ..FaultConfig::default() };
            let d = FaultyDevice::new(8192, cfg);
            d.write_at(0, &[9u8; 8192]).unwrap();
            let img = d.crash();
            for sector in img.chunks(SECTOR as usize) {
                assert!(sector.iter().all(|&b| b == sector[0]), "sector torn inside");
            }
            let kept = img.chunks(512).filter(|s| s[0] == 9).count();
            saw_partial |= kept > 0 && kept < 16;
        }
        assert!(saw_partial, "tearing never produced a partial write");
    }

    #[test]
    fn injected_faults_fire_once() {
        let cfg =
            FaultConfig { fail_write: Some(1), fail_flush: Some(0), ..FaultConfig::default() };
        let d = FaultyDevice::new(4096, cfg);
        d.write_at(0, &[1]).unwrap();
        assert!(matches!(d.write_at(0, &[1]), Err(Error::InjectedFault { op: "write", index: 1 })));
        d.write_at(0, &[1]).unwrap();
        assert!(matches!(d.flush(0, 1), Err(Error::InjectedFault { op: "flush", index: 0 })));
        d.flush(0, 1).unwrap();
    }
}
