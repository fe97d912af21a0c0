//! [`Server`]: one model over one store, serving many requests at once. Keys and weights are
//! durable store objects put once and shared by every request; each request runs its own
//! executor in its own scratch space and request stream, admitted when its pinned set fits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use hetier_tiering::{Cancel, ObjectId, StreamId, StreamStats, TieredStore};

use super::admission::{Admission, AdmissionStats};
use crate::ckks::{Ciphertext, Context, KeySwitchKey};
use crate::error::Error as CoreError;
use crate::exec::error::{Error, Result};
use crate::exec::ids::{ct_id_in, SCRATCH_SPACES};
use crate::exec::session::model_weights_tag;
use crate::exec::{
    derivable_damage, program_role, EvalKeyBundle, Executor, KeyReport, KeySet, KeySetId, RunReport,
};
use crate::model::{Compiled, Model};
use crate::nn::encrypted_weights::is_encrypted_weight;
use crate::nn::{ObjId, ObjKind};

/// How a [`Server`] admits requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Requests that may wait for room at once; one more fails with [`Error::Overloaded`].
    pub max_waiting: usize,
    /// Bytes the pinned sets of running requests may take together (`None`: the store's
    /// whole budget; less leaves room for other users of the store).
    pub admission_bytes: Option<u64>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self { max_waiting: 1024, admission_bytes: None }
    }
}

/// What one request returns: the encrypted output and how it went.
#[derive(Debug, Clone)]
pub struct Response {
    /// The output ciphertext (the logits), for the client to decrypt.
    pub output: Ciphertext,
    /// Steps run and their compute time.
    pub report: RunReport,
    /// Compute time of each layer of the program (by layer index), in nanoseconds.
    pub layer_ns: Vec<u64>,
    /// How the request's pins were served (DRAM hits, PM reads, prefetches).
    pub pins: StreamStats,
    /// Time spent waiting for admission.
    pub queued: Duration,
    /// Time from admission to the output.
    pub run: Duration,
}

/// Counters of a server since it was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests that returned an output.
    pub served: u64,
    /// Requests that failed (including cancelled and refused ones).
    pub failed: u64,
    /// The admission queue's counters.
    pub admission: AdmissionStats,
    /// Damaged encoded weights re-encoded from the model and replaced in the pool.
    pub healed: u64,
    /// Requests that met a damaged evaluation key ([`Error::KeyDamaged`]: the client must
    /// send its keys again).
    pub keys_damaged: u64,
    /// Evaluation keys replaced from keys a client sent again ([`Server::restore_keys`]).
    pub keys_restored: u64,
}

/// Serves one compiled model over one tiered store to many requests at once.
///
/// `Send + Sync`: share it (e.g. in an `Arc`) and call [`Server::infer`] from as many threads
/// as requests should run at once. It holds public material only: evaluation keys arrive from
/// a [`super::Client`] as an [`EvalKeyBundle`] (or are already in the pool), weights are
/// encoded from the model. Call it from threads of your own rather than from tasks of a rayon
/// pool: a request that waits for admission inside a rayon task could block a worker that
/// another running request's parallel loops need.
pub struct Server {
    pub(super) store: Arc<TieredStore>,
    pub(super) compiled: Compiled,
    pub(super) ctx: Arc<Context>,
    pub(super) keyset: KeySetId,
    /// The key set every request uses. A request holds it shared for its whole run; healing
    /// takes it exclusively, so no request pins an object while it is replaced.
    pub(super) keys: RwLock<KeySet>,
    /// Galois elements of the program's keys (0: relinearisation), and what each is to it.
    pub(super) key_roles: BTreeMap<u64, String>,
    pub(super) weights_tag: u64,
    /// The program's ciphertexts (not encrypted weights): a request's scratch objects.
    scratch: Vec<ObjId>,
    /// DRAM one request pins at once at most (its admission size).
    need: u64,
    admission: Admission,
    next_space: AtomicU32,
    served: AtomicU64,
    failed: AtomicU64,
    pub(super) healed: AtomicU64,
    pub(super) keys_damaged: AtomicU64,
    pub(super) keys_restored: AtomicU64,
    /// What preparing the keys did.
    key_report: KeyReport,
    weights_encoded: usize,
}

// Shared by reference between request threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Server>();
};

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("keyset", &self.keyset)
            .field("need", &self.need)
            .finish_non_exhaustive()
    }
}

/// Removes a request's scratch objects when it ends, however it ends (output returned,
/// error, cancellation or panic). Declared before the request's executor, so it drops after
/// it, when no pin of the request is left.
struct ScratchGuard<'a> {
    store: &'a TieredStore,
    ids: Vec<ObjectId>,
}

impl Drop for ScratchGuard<'_> {
    fn drop(&mut self) {
        for &id in &self.ids {
            if self.store.contains(id) {
                // Best effort: nothing of the request pins it any more; an error here would
                // be the pool's, and the object is scratch (dropped on reopen anyway).
                let _ = self.store.remove(id);
            }
        }
    }
}

impl Server {
    /// Prepares `model` (compiled as `compiled`) over `store` for the client key set `keyset`:
    /// its evaluation keys are taken from the pool when an earlier process left them, else
    /// from `keys` (which the client sent), and put durably; its weights are encoded and put
    /// unless the pool holds them. Fails with the store's `BudgetTooSmall` when one request's
    /// pinned set alone cannot fit the budget.
    pub fn new(
        model: &Model,
        compiled: Compiled,
        store: Arc<TieredStore>,
        keyset: KeySetId,
        mut keys: Option<EvalKeyBundle>,
        options: ServerOptions,
    ) -> Result<Self> {
        let params = compiled.program.params();
        let ctx = Context::new(params)?;
        if let Some(b) = &keys {
            if b.keyset != keyset {
                return Err(CoreError::InvalidParameter {
                    name: "keys",
                    reason: format!(
                        "the bundle is for key set {:#x}, the server for {:#x}",
                        b.keyset.0, keyset.0
                    ),
                }
                .into());
            }
        }
        let source = |g: u64| -> Result<KeySwitchKey> {
            match keys.as_mut() {
                Some(b) => b.take(g),
                None => Err(Error::KeyManifest {
                    reason: format!(
                        "the pool holds no evaluation key for Galois element {g} of key set \
                         {:#x}, and no keys were sent",
                        keyset.0
                    ),
                }),
            }
        };
        let needed = Executor::needed_keys(&compiled.program);
        let (key_set, key_report) =
            KeySet::ensure_with(&store, &ctx, keyset, &needed, source, |_, _| {})?;
        let weights_tag = model_weights_tag(model, &compiled);
        let (need, weights_encoded) = {
            let mut setup = Executor::real(&compiled.program, weights_tag, keyset, &store, &ctx)?;
            let encoded = setup.prepare_weights()? + setup.prepare_encrypted_weights(None)?;
            let sets = setup.working_sets();
            store.check_working_sets(sets.iter().map(|s| s.iter().copied()))?;
            (TieredStore::working_set_need(sets), encoded)
        };
        let (need, step) = need;
        let capacity = options.admission_bytes.unwrap_or(store.budget());
        if need > capacity {
            let e = hetier_tiering::Error::BudgetTooSmall { budget: capacity, needed: need, step };
            return Err(e.into());
        }
        let program = &compiled.program;
        let key_roles = program
            .keys()
            .iter()
            .filter_map(|&k| {
                let g = program.objects()[k.index()].kind.key_tag()?;
                Some((g, program_role(program, k).what))
            })
            .collect();
        let scratch = compiled
            .program
            .objects()
            .iter()
            .enumerate()
            .filter(|(_, o)| o.kind == ObjKind::Ciphertext && !is_encrypted_weight(o))
            .map(|(i, _)| ObjId(i as u32))
            .collect();
        Ok(Self {
            store,
            compiled,
            ctx,
            keyset,
            keys: RwLock::new(key_set),
            key_roles,
            weights_tag,
            scratch,
            need,
            admission: Admission::new(capacity, options.max_waiting),
            next_space: AtomicU32::new(0),
            served: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            healed: AtomicU64::new(0),
            keys_damaged: AtomicU64::new(0),
            keys_restored: AtomicU64::new(0),
            key_report,
            weights_encoded,
        })
    }

    /// Runs one request: `input` is the client's encrypted sample (see
    /// [`super::Client::encrypt`]). Waits while the budget cannot hold one more request's
    /// pinned set, then runs on the calling thread.
    pub fn infer(&self, input: &Ciphertext) -> Result<Response> {
        self.infer_with(input, &Cancel::new())
    }

    /// As [`Server::infer`], stopping with an error once `cancel` is raised: while waiting for
    /// admission ([`Error::Cancelled`]) or at the next step of the run (the store's
    /// `Cancelled`). Its scratch objects are removed either way.
    pub fn infer_with(&self, input: &Ciphertext, cancel: &Cancel) -> Result<Response> {
        let r = self.run_request(input, cancel);
        let counter = if r.is_ok() { &self.served } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
        r
    }

    /// As [`Server::infer`] on a serialised ciphertext (checked before anything is allocated
    /// for it), returning the serialised output: the form a network front end or a binding
    /// passes along.
    pub fn infer_bytes(&self, input: &[u8]) -> Result<Vec<u8>> {
        let ct = Ciphertext::from_bytes(&self.ctx, input)?;
        Ok(self.infer(&ct)?.output.to_bytes(&self.ctx))
    }

    fn check_input(&self, ct: &Ciphertext) -> Result<()> {
        let p = self.ctx.params();
        if ct.params_id() != p.id() {
            return Err(
                CoreError::ParamsMismatch { expected: p.id(), found: ct.params_id() }.into()
            );
        }
        let bad = |reason: String| -> Error {
            CoreError::InvalidParameter { name: "request input", reason }.into()
        };
        let &[(_, input)] = self.compiled.program.inputs() else {
            return Err(bad("the program does not have exactly one input".into()));
        };
        let want = self.compiled.program.object(input)?;
        if ct.degree() != 1 {
            return Err(bad(format!("a ciphertext of degree {} (want 1)", ct.degree())));
        }
        if ct.level() != want.level {
            return Err(bad(format!("level {} (the program takes {})", ct.level(), want.level)));
        }
        if (ct.scale() / want.scale - 1.0).abs() > 1e-9 {
            return Err(bad(format!("scale {} (the program takes {})", ct.scale(), want.scale)));
        }
        Ok(())
    }

    fn run_request(&self, input: &Ciphertext, cancel: &Cancel) -> Result<Response> {
        let arrived = Instant::now();
        self.check_input(input)?;
        let _permit = self.admission.enter(self.need, cancel)?;
        let admitted = Instant::now();
        // Space 0 is a lone executor's; request spaces cycle through the rest.
        let space = 1 + self.next_space.fetch_add(1, Ordering::Relaxed) % (SCRATCH_SPACES - 1);
        let scope = self.store.stream(StreamId(u64::from(space)), cancel.clone(), self.need)?;
        // A damaged weight is re-encoded and the run repeated; each object at most once per
        // request, so a pool that keeps damaging what is written to it cannot loop.
        let mut healed: Vec<ObjectId> = Vec::new();
        loop {
            let r = self.attempt(input, space);
            match derivable_damage(&r) {
                Some((id, what)) if !healed.contains(&id) => {
                    self.heal(id, what)?;
                    healed.push(id);
                }
                _ => {
                    let (output, mut report, layer_ns) = r?;
                    report.healed = healed.len();
                    let pins = scope.stats();
                    let (queued, run) = (admitted - arrived, admitted.elapsed());
                    return Ok(Response { output, report, layer_ns, pins, queued, run });
                }
            }
        }
    }

    /// One run of a request in scratch space `space`, holding the key set shared (healing
    /// waits for it to end); its scratch objects are gone when it returns.
    fn attempt(&self, input: &Ciphertext, space: u32) -> Result<(Ciphertext, RunReport, Vec<u64>)> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        let _scratch = ScratchGuard {
            store: &self.store,
            ids: self.scratch.iter().map(|&o| ct_id_in(space, o)).collect(),
        };
        let program = &self.compiled.program;
        let mut ex =
            Executor::real(program, self.weights_tag, self.keyset, &self.store, &self.ctx)?
                .in_scratch_space(space);
        ex.use_keys(keys.clone())?;
        // Only records the encrypted weights' metadata: the server put them already.
        ex.prepare_encrypted_weights(None)?;
        let report = ex.run(Some(input))?;
        let output = ex.output(&self.compiled.output_name)?;
        ex.finish()?;
        Ok((output, report, ex.layer_compute_ns().to_vec()))
    }

    /// The CKKS context (for deserialising and serialising ciphertexts).
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The compiled model it serves.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The store it serves from.
    pub fn store(&self) -> &Arc<TieredStore> {
        &self.store
    }

    /// The client key set it serves.
    pub fn keyset(&self) -> KeySetId {
        self.keyset
    }

    /// DRAM one request pins at once at most, in whole pages: what admission reserves for it.
    pub fn request_need(&self) -> u64 {
        self.need
    }

    /// What preparing the evaluation keys did (generated from the bundle, or reused).
    pub fn key_report(&self) -> KeyReport {
        self.key_report
    }

    /// Weight objects encoded and put when the server was built (0 when all were reused).
    pub fn weights_encoded(&self) -> usize {
        self.weights_encoded
    }

    /// Counters since the server was built.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            served: self.served.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            admission: self.admission.stats(),
            healed: self.healed.load(Ordering::Relaxed),
            keys_damaged: self.keys_damaged.load(Ordering::Relaxed),
            keys_restored: self.keys_restored.load(Ordering::Relaxed),
        }
    }
}
