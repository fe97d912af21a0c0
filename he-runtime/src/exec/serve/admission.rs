//! Back-pressure: a request is admitted only when the DRAM its steps pin at once fits beside
//! the pinned sets of the requests already running, so that the pinned sets of all running
//! requests always fit the budget together. The others wait in a bounded FIFO queue.
//!
//! Why this cannot deadlock: an admitted request never waits for admission again, and the
//! store lets it wait only for transfers, which finish without any lock a request holds; a
//! waiting request holds nothing in the store. A request whose pinned set alone exceeds the
//! capacity is refused when the server is built, so the head of the queue always gets in once
//! the running requests end.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hetier_tiering::Cancel;

use crate::exec::error::{Error, Result};

/// How often a waiting request looks at its cancellation flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Queue {
    /// Bytes of pinned sets admitted and not yet released.
    in_use: u64,
    /// Tickets waiting, oldest first.
    waiting: VecDeque<u64>,
    next_ticket: u64,
    admitted: u64,
    peak_in_use: u64,
    peak_waiting: usize,
}

/// The admission queue of one server.
#[derive(Debug)]
pub(super) struct Admission {
    queue: Mutex<Queue>,
    cond: Condvar,
    capacity: u64,
    max_waiting: usize,
}

/// What the admission queue saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Bytes of pinned sets of the requests running now.
    pub in_use: u64,
    /// Requests waiting now.
    pub waiting: usize,
    /// Requests admitted so far.
    pub admitted: u64,
    /// Most bytes of pinned sets admitted at once.
    pub peak_in_use: u64,
    /// Most requests waiting at once.
    pub peak_waiting: usize,
}

/// An admitted request's share of the capacity; given back on drop.
#[derive(Debug)]
pub(super) struct Permit<'a> {
    admission: &'a Admission,
    bytes: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut q = self.admission.lock();
        q.in_use -= self.bytes;
        drop(q);
        self.admission.cond.notify_all();
    }
}

impl Admission {
    /// A queue admitting pinned sets up to `capacity` bytes at once, with at most
    /// `max_waiting` requests waiting.
    pub(super) fn new(capacity: u64, max_waiting: usize) -> Self {
        Self { queue: Mutex::default(), cond: Condvar::new(), capacity, max_waiting }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue's counters stay consistent at every unlock: a panic elsewhere cannot
        // leave them half-updated.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `bytes` fit beside the admitted requests and every earlier waiter is in.
    /// Fails at once with [`Error::Overloaded`] when the queue is full, and with
    /// [`Error::Cancelled`] once `cancel` is raised while waiting. `bytes` must not exceed
    /// the capacity (the server checks its program once).
    pub(super) fn enter(&self, bytes: u64, cancel: &Cancel) -> Result<Permit<'_>> {
        let mut q = self.lock();
        if q.waiting.is_empty() && q.in_use + bytes <= self.capacity {
            return Ok(self.admit(q, bytes));
        }
        if q.waiting.len() >= self.max_waiting {
            return Err(Error::Overloaded { waiting: q.waiting.len(), limit: self.max_waiting });
        }
        let ticket = q.next_ticket;
        q.next_ticket += 1;
        q.waiting.push_back(ticket);
        q.peak_waiting = q.peak_waiting.max(q.waiting.len());
        loop {
            if cancel.is_cancelled() {
                q.waiting.retain(|&t| t != ticket);
                drop(q);
                // The next in line may fit now that this one left the head.
                self.cond.notify_all();
                return Err(Error::Cancelled);
            }
            if q.waiting.front() == Some(&ticket) && q.in_use + bytes <= self.capacity {
                q.waiting.pop_front();
                let permit = self.admit(q, bytes);
                self.cond.notify_all();
                return Ok(permit);
            }
            q = self.cond.wait_timeout(q, CANCEL_POLL).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    fn admit(&self, mut q: MutexGuard<'_, Queue>, bytes: u64) -> Permit<'_> {
        q.in_use += bytes;
        q.admitted += 1;
        q.peak_in_use = q.peak_in_use.max(q.in_use);
        Permit { admission: self, bytes }
    }

    /// A snapshot of the counters.
    pub(super) fn stats(&self) -> AdmissionStats {
        let q = self.lock();
        AdmissionStats {
            in_use: q.in_use,
            waiting: q.waiting.len(),
            admitted: q.admitted,
            peak_in_use: q.peak_in_use,
            peak_waiting: q.peak_waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[test]
    fn requests_wait_in_order_a_full_queue_refuses_and_a_cancelled_waiter_leaves() {
        let a = Admission::new(10, 1);
        let first = a.enter(6, &Cancel::new()).unwrap();
        let (tx, rx) = mpsc::channel();
        let cancel = Cancel::new();
        std::thread::scope(|s| {
            let (a, tx, c) = (&a, tx.clone(), cancel.clone());
            s.spawn(move || tx.send(a.enter(6, &c).map(drop)).unwrap());
            while a.stats().waiting == 0 {
                std::thread::yield_now();
            }
            // One waits: a third is refused with the numbers, not queued.
            assert!(matches!(
                a.enter(1, &Cancel::new()),
                Err(Error::Overloaded { waiting: 1, limit: 1 })
            ));
            assert!(rx.try_recv().is_err(), "the second must wait while the first runs");
            cancel.cancel();
            assert!(matches!(rx.recv().unwrap(), Err(Error::Cancelled)));
        });
        // With the first still running, a small request fits and is admitted at once.
        drop(a.enter(4, &Cancel::new()).unwrap());
        std::thread::scope(|s| {
            let a = &a;
            let h = s.spawn(move || a.enter(6, &Cancel::new()).map(drop));
            while a.stats().waiting == 0 {
                std::thread::yield_now();
            }
            drop(first);
            h.join().unwrap().unwrap();
        });
        let st = a.stats();
        assert_eq!((st.in_use, st.waiting, st.admitted, st.peak_in_use), (0, 0, 3, 10));
    }
}
