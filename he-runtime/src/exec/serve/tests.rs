use std::path::PathBuf;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hetier_tiering::{
    Cancel, ObjectKind, PolicyConfig, Pool, PoolOptions, PrefetchRule, TieredStore,
};

use super::*;
use crate::ckks::{Ciphertext, Preset};
use crate::exec::Error;
use crate::model::{argmax, Compiled, Model};

const SEED: [u8; 32] = [9; 32];
/// A hang is a failure: no test here takes more than a few seconds per request.
const WATCHDOG: Duration = Duration::from_secs(600);

fn digits() -> (Model, Compiled) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models");
    let m = Model::load(dir.join("digits.json")).unwrap();
    let c = m.compile(&Preset::N14.params().unwrap()).unwrap();
    (m, c)
}

fn store(dir: &std::path::Path, budget: u64, policy: PolicyConfig) -> Arc<TieredStore> {
    let pool = Pool::create(dir, PoolOptions::default().segment_size(32 << 20)).unwrap();
    Arc::new(TieredStore::builder().dram_budget(budget).pool(pool).policy(policy).build().unwrap())
}

fn server(m: &Model, c: &Compiled, st: &Arc<TieredStore>, client: &Client) -> Server {
    let keys = client.evaluation_keys(c).unwrap();
    let opts = ServerOptions::default();
    Server::new(m, c.clone(), Arc::clone(st), client.keyset(), Some(keys), opts).unwrap()
}

/// DRAM one request of the model pins at once (from a server over a roomy throwaway store).
fn need_of(m: &Model, c: &Compiled, client: &Client) -> u64 {
    let probe = tempfile::tempdir().unwrap();
    let st = store(probe.path(), 1 << 30, PolicyConfig::Lru);
    server(m, c, &st, client).request_need()
}

/// Encrypts test samples `0..k` of the model.
fn requests(m: &Model, c: &Compiled, client: &mut Client, k: usize) -> Vec<Ciphertext> {
    let ts = m.test_set().unwrap();
    (0..k).map(|i| client.encrypt(c, &m.prepare_input(ts.image(i)).unwrap()).unwrap()).collect()
}

/// Runs `inputs` on `threads` threads (each takes the next input), checks every response
/// against the plaintext model and returns them in input order. A hang fails the test.
fn serve_all(
    srv: &Arc<Server>,
    m: &Model,
    client: &Client,
    inputs: Vec<Ciphertext>,
    threads: usize,
) -> Vec<Response> {
    let inputs = Arc::new(inputs);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    for _ in 0..threads {
        let (srv, inputs, next, tx) = (srv.clone(), inputs.clone(), next.clone(), tx.clone());
        std::thread::spawn(move || loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(ct) = inputs.get(i) else { break };
            tx.send((i, srv.infer(ct))).unwrap();
        });
    }
    let ts = m.test_set().unwrap();
    let mut out: Vec<Option<Response>> = (0..inputs.len()).map(|_| None).collect();
    for _ in 0..inputs.len() {
        let (i, r) = rx.recv_timeout(WATCHDOG).expect("requests deadlocked");
        let r = r.unwrap_or_else(|e| panic!("request {i} failed: {e}"));
        let y = client.decrypt(srv.compiled(), &r.output).unwrap();
        let want = ts.reference_logits(i);
        let err = y.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(err < 1e-3, "request {i}: logit error {err}");
        assert_eq!(argmax(&y), argmax(want), "request {i}");
        out[i] = Some(r);
    }
    out.into_iter().map(|r| r.unwrap()).collect()
}

#[test]
fn four_requests_on_two_threads_at_a_small_budget_agree_with_plaintext_and_leave_nothing() {
    let (m, c) = digits();
    let footprint: u64 = c.program.objects().iter().map(|o| o.bytes).sum();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), footprint / 3, PolicyConfig::planned(PrefetchRule::Conservative));
    let mut client = Client::from_seed(c.program.params(), SEED).unwrap();
    let srv = Arc::new(server(&m, &c, &st, &client));
    assert!(2 * srv.request_need() <= st.budget(), "two requests must fit to run at once");
    let baseline = st.stats();
    let inputs = requests(&m, &c, &mut client, 4);
    let responses = serve_all(&srv, &m, &client, inputs, 2);
    assert_eq!(responses.len(), 4);
    let after = st.stats();
    assert_eq!(after.objects, baseline.objects, "every request's scratch objects are gone");
    assert_eq!(after.open_streams, 0);
    assert!(after.peak_dram <= st.budget());
    let s = srv.stats();
    assert_eq!((s.served, s.failed, s.admission.in_use), (4, 0, 0));
    assert!(s.admission.peak_in_use > srv.request_need(), "two ran at once: {s:?}");
}

#[test]
fn requests_that_cannot_all_fit_wait_their_turn_instead_of_failing_or_deadlocking() {
    // Without admission, four requests at a budget that holds one pinned set at a time fail
    // with a store budget error as soon as two pin at once; a store that
    // waited for room there instead would deadlock, each request holding part of its set.
    let (m, c) = digits();
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::from_seed(c.program.params(), SEED).unwrap();
    let need = need_of(&m, &c, &client);
    let st = store(dir.path(), need + need / 2, PolicyConfig::planned(PrefetchRule::Conservative));
    let srv = Arc::new(server(&m, &c, &st, &client));
    let baseline = st.stats().objects;
    let inputs = requests(&m, &c, &mut client, 4);
    serve_all(&srv, &m, &client, inputs, 4);
    let s = srv.stats();
    assert_eq!((s.served, s.failed), (4, 0));
    assert!(s.admission.peak_waiting >= 1, "some request had to wait: {s:?}");
    assert!(s.admission.peak_in_use <= st.budget());
    assert_eq!(st.stats().objects, baseline);
}

#[test]
fn a_failing_or_cancelled_request_frees_its_scratch_objects() {
    let (m, c) = digits();
    let footprint: u64 = c.program.objects().iter().map(|o| o.bytes).sum();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), footprint / 2, PolicyConfig::Lru);
    let mut client = Client::from_seed(c.program.params(), SEED).unwrap();
    let srv = server(&m, &c, &st, &client);
    let ct = requests(&m, &c, &mut client, 1).remove(0);
    let baseline = st.stats();

    // Cancelled before it starts: its input was put, its first pin fails.
    let cancel = Cancel::new();
    cancel.cancel();
    let e = srv.infer_with(&ct, &cancel).unwrap_err();
    assert!(matches!(e.store(), Some(hetier_tiering::Error::Cancelled { .. })), "{e}");
    assert_eq!(st.stats().objects, baseline.objects);

    // A weight of the last layer vanished: the request fails deep in the run, with many of
    // its ciphertexts in the store.
    let program = &c.program;
    let last = (0..program.objects().len())
        .rev()
        .map(|i| crate::nn::ObjId(i as u32))
        .find(|&o| program.objects()[o.index()].kind == crate::nn::ObjKind::Plaintext)
        .unwrap();
    let tag = crate::exec::session::model_weights_tag(&m, &c);
    st.remove(crate::exec::ids::weight_id(tag, last)).unwrap();
    let e = srv.infer(&ct).unwrap_err();
    assert!(matches!(e.store(), Some(hetier_tiering::Error::UnknownObject { .. })), "{e}");
    assert_eq!(st.stats().objects, baseline.objects - 1, "only the removed weight is missing");
    let s = srv.stats();
    assert_eq!((s.served, s.failed, s.admission.in_use), (0, 2, 0));

    // A ciphertext at another level than the program's input is refused before anything is
    // put.
    let ctx = srv.context();
    let low = crate::ckks::Evaluator::new(ctx).drop_to_level(&ct, ct.level() - 1).unwrap();
    let e = srv.infer(&low).unwrap_err();
    assert!(matches!(e.core(), Some(crate::Error::InvalidParameter { .. })), "{e}");
    assert_eq!(st.stats().objects, baseline.objects - 1);
}

#[test]
fn interleaved_requests_are_both_prefetched_for_and_nothing_prefetched_is_wasted() {
    let (m, c) = digits();
    let mut client = Client::from_seed(c.program.params(), SEED).unwrap();
    let need = need_of(&m, &c, &client);
    let footprint: u64 = c.program.objects().iter().map(|o| o.bytes).sum();
    // From tight (the two requests' pinned sets and one more) to roomy, all under half the
    // model's objects: keys and weights keep moving between the tiers while both run.
    for sets in [3, 4] {
        let dir = tempfile::tempdir().unwrap();
        let st = store(dir.path(), sets * need, PolicyConfig::planned(PrefetchRule::Conservative));
        assert!(st.budget() < footprint / 2);
        let srv = Arc::new(server(&m, &c, &st, &client));
        let inputs = requests(&m, &c, &mut client, 4);
        let responses = serve_all(&srv, &m, &client, inputs, 2);
        for (i, r) in responses.iter().enumerate() {
            assert!(r.pins.prefetches > 0, "{sets} sets: nothing prefetched for {i}: {:?}", r.pins);
        }
        let s = st.stats();
        assert!(s.prefetches > 0 && s.bytes_pm_to_dram > 0, "{sets} sets: {s:?}");
        assert_eq!(s.prefetch_evicted_unused, 0, "{sets} sets: {s:?}");
    }
}

/// Flips one bit in the middle of the first object of each kind `pick` selects, in the pool
/// files under `dir` (closed); returns how many objects it damaged.
fn damage(dir: &std::path::Path, pick: &[fn(ObjectKind) -> bool]) -> usize {
    use std::os::unix::fs::FileExt;
    let (pool, _) = Pool::open(dir, PoolOptions::default()).unwrap();
    let seg = pool.superblock().segment_size;
    let list = pool.list();
    let victims: Vec<_> = pick.iter().filter_map(|p| list.iter().find(|m| p(m.kind))).collect();
    for m in &victims {
        let at = m.offset.0 + m.len / 2;
        let path = dir.join(format!("segment-{:06}.hpool", at / seg));
        let f = std::fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at % seg).unwrap();
        f.write_all_at(&[b[0] ^ 0x10], at % seg).unwrap();
        f.sync_all().unwrap();
    }
    victims.len()
}

/// Damaged objects `hetier inspect` would report (the pool's own checksum pass).
fn corrupt_in(dir: &std::path::Path) -> usize {
    Pool::open(dir, PoolOptions::default()).unwrap().0.fsck().unwrap().corrupt.len()
}

#[test]
fn a_kept_pool_with_a_damaged_key_and_weight_is_healed_and_restored_and_agrees() {
    let (m, c) = digits();
    let footprint: u64 = c.program.objects().iter().map(|o| o.bytes).sum();
    let dir = tempfile::tempdir().unwrap();
    let mut client = Client::from_seed(c.program.params(), SEED).unwrap();
    let inputs = requests(&m, &c, &mut client, 2);
    drop(server(&m, &c, &store(dir.path(), footprint / 3, PolicyConfig::Lru), &client));
    let galois = |k: ObjectKind| matches!(k, ObjectKind::EvalKey { galois_element, .. } if galois_element != 0);
    let weight = |k: ObjectKind| k == ObjectKind::Plaintext;
    assert_eq!(damage(dir.path(), &[galois, weight]), 2);
    assert_eq!(corrupt_in(dir.path()), 2);

    // A later server over the kept pool, with no keys sent: it finds the damage at run time.
    let pool = Pool::open(dir.path(), PoolOptions::default()).unwrap().0;
    let policy = PolicyConfig::planned(PrefetchRule::Conservative);
    let st = Arc::new(
        TieredStore::builder()
            .dram_budget(footprint / 3)
            .pool(pool)
            .policy(policy)
            .build()
            .unwrap(),
    );
    let opts = ServerOptions::default();
    let srv =
        Arc::new(Server::new(&m, c.clone(), Arc::clone(&st), client.keyset(), None, opts).unwrap());
    let baseline = st.stats().objects;
    let e = srv.infer(&inputs[0]).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::KeyDamaged { galois_element, .. } if galois_element != 0), "{e:?}");
    assert!(text.starts_with("the Galois key for rotation step"), "{text}");
    assert!(text.contains("restore_keys"), "{text}");
    assert_eq!(st.stats().objects, baseline, "the failed request left scratch objects");
    // The client sends its keys again: only the damaged one is replaced.
    assert_eq!(srv.restore_keys(client.evaluation_keys(&c).unwrap()).unwrap(), 1);
    serve_all(&srv, &m, &client, inputs, 2);
    let s = srv.stats();
    assert_eq!((s.served, s.failed), (2, 1), "{s:?}");
    assert_eq!((s.healed, s.keys_damaged, s.keys_restored), (1, 1, 1), "{s:?}");
    drop(srv);
    drop(st);
    assert_eq!(corrupt_in(dir.path()), 0, "the replacements are durable");
}
