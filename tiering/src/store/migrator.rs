//! Background I/O threads: PM → DRAM prefetch and DRAM → PM write-back, fed by a channel.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Receiver;
use hetier_allocator::Durability;

use super::state::{complete_load, complete_write_back, schedule_prefetch, Inner, Job};

/// Starts one migrator thread. `None` if the OS refused: the store still works (pins load on
/// demand), and once no receiver is left, sends fail and prefetching switches off.
pub(super) fn spawn(inner: Arc<Inner>, rx: Receiver<Job>, index: usize) -> Option<JoinHandle<()>> {
    let name = format!("hetier-migrator-{index}");
    std::thread::Builder::new().name(name).spawn(move || run(&inner, &rx)).ok()
}

fn run(inner: &Inner, rx: &Receiver<Job>) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Stop => return,
            Job::Fetch(id, spare) => {
                let len = match inner.state.lock().objects.get(&id) {
                    Some(e) => e.len,
                    None => continue,
                };
                let res = inner.pm_read(id, len, spare);
                let mut st = inner.state.lock();
                // A failure is recorded on the object and reported to the pin that needs it.
                let _ = complete_load(inner, &mut st, id, len, res, true);
                schedule_prefetch(inner, &mut st);
            }
            Job::WriteBack(id) => {
                let (block, kind, len) = {
                    let st = inner.state.lock();
                    match st.objects.get(&id) {
                        Some(e) => (e.block.clone(), e.kind, e.len),
                        None => continue,
                    }
                };
                let res = match &block {
                    Some(b) => inner.pm_write(id, kind, Durability::Scratch, b.as_bytes()),
                    None => Ok(()),
                };
                drop(block);
                let mut st = inner.state.lock();
                // On failure the object simply stays in DRAM; a later demand eviction retries.
                let _ = complete_write_back(inner, &mut st, id, len, res);
                schedule_prefetch(inner, &mut st);
            }
        }
    }
}
