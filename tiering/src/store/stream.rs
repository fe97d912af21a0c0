//! Request streams: a scope that makes one thread's hints and pins those of one request, so
//! that the policy keeps each request's plan apart (and the planned policy merges them), pins
//! are counted per request, and a cancelled request's next pin fails.
//!
//! The scope is thread-local: the code that runs a request (an executor) keeps calling
//! `pin` and `hint` as before, and the store attributes them to the scope open on the calling
//! thread. Scopes nest as a stack per thread and per store.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::state::{schedule_prefetch, Inner};
use super::stats::StreamStats;
use crate::ids::StreamId;

/// A request's cancellation flag, shared by whoever may cancel it (cheap to clone).
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A flag not yet raised.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels the request: its next pin fails with [`crate::Error::Cancelled`].
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`Self::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

struct Open {
    /// Address of the store's shared state: scopes of other stores on this thread are not ours.
    store: usize,
    stream: StreamId,
    cancel: Cancel,
}

thread_local! {
    static OPEN: RefCell<Vec<Open>> = const { RefCell::new(Vec::new()) };
}

fn addr(inner: &Inner) -> usize {
    inner as *const Inner as usize
}

/// The innermost scope of this store open on the calling thread.
pub(super) fn current(inner: &Inner) -> Option<(StreamId, Cancel)> {
    let me = addr(inner);
    OPEN.with(|o| {
        o.borrow().iter().rev().find(|s| s.store == me).map(|s| (s.stream, s.cancel.clone()))
    })
}

/// While alive, the calling thread's pins and hints on this store belong to one request
/// stream (see [`super::TieredStore::stream`]). Dropping it ends the stream: its plan no
/// longer counts. Not `Send`: it must end on the thread that opened it.
pub struct StreamScope<'a> {
    pub(super) inner: &'a Inner,
    pub(super) stream: StreamId,
    /// DRAM kept free of prefetches while the stream is open.
    pub(super) reserve: u64,
    pub(super) _thread: PhantomData<*const ()>,
}

impl StreamScope<'_> {
    /// The stream's id.
    pub fn id(&self) -> StreamId {
        self.stream
    }

    /// The stream's pin counters so far.
    pub fn stats(&self) -> StreamStats {
        self.inner.state.lock().streams.get(&self.stream).copied().unwrap_or_default()
    }

    pub(super) fn open(inner: &Inner, stream: StreamId, cancel: Cancel) {
        OPEN.with(|o| o.borrow_mut().push(Open { store: addr(inner), stream, cancel }));
    }
}

impl std::fmt::Debug for StreamScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScope").field("stream", &self.stream).finish_non_exhaustive()
    }
}

impl Drop for StreamScope<'_> {
    fn drop(&mut self) {
        let me = addr(self.inner);
        OPEN.with(|o| {
            let mut o = o.borrow_mut();
            if let Some(i) = o.iter().rposition(|s| s.store == me && s.stream == self.stream) {
                o.remove(i);
            }
        });
        let mut st = self.inner.state.lock();
        st.streams.remove(&self.stream);
        st.stream_reserve = st.stream_reserve.saturating_sub(self.reserve);
        st.policy.on_stream_end(self.stream);
        self.inner.cond.notify_all();
        schedule_prefetch(self.inner, &mut st);
    }
}
