//! Diagonals encoded ahead of time against the transforms' own encoding.

use rand::{Rng, SeedableRng};

use super::*;
use crate::ckks::{Encryptor, KeyGenerator, SecretKey};

fn setup(log_n: u32, slots: Option<usize>) -> (Bootstrapper, BootstrapKeys, SecretKey) {
    let mut preset = BootstrapPreset::insecure_test(log_n, 1);
    preset.config = BootstrapConfig { slots, ..Default::default() };
    let ctx = Context::new(&preset.params().unwrap()).unwrap();
    let mut kg = KeyGenerator::with_seed(&ctx, [31; 32]);
    let sk = kg.secret_key();
    let bs = Bootstrapper::new(&ctx, &preset.config).unwrap();
    let keys = BootstrapKeys::generate(&mut kg, &sk, &bs).unwrap();
    (bs, keys, sk)
}

fn encrypted(bs: &Bootstrapper, sk: &SecretKey, level: usize) -> Ciphertext {
    let ctx = bs.context();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let period = bs.slots();
    let z: Vec<Complex64> = (0..period)
        .map(|_| Complex64::new(rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)))
        .collect();
    let z: Vec<Complex64> = z.iter().copied().cycle().take(ctx.params().slots()).collect();
    let pt = Encoder::new(ctx).encode(&z, level, ctx.params().scale()).unwrap();
    Encryptor::with_seed(ctx, [3; 32]).encrypt_sk(sk, &pt).unwrap()
}

/// With every diagonal encoded beforehand, a bootstrap encodes none itself and its result
/// is the on-the-fly one word for word (full slots at log N 12 and 13, sparse slots at 12):
/// the listed scales are the ones the bootstrap encodes at. The access sequence is the key
/// sequence with every diagonal in id order inserted.
#[test]
fn pre_encoded_diagonals_give_the_on_the_fly_bootstrap_bit_for_bit() {
    for (log_n, slots) in [(12, None), (12, Some(16)), (13, None)] {
        let (bs, keys, sk) = setup(log_n, slots);
        let diagonals = bs.encode_diagonals().unwrap();
        let listed = bs.diagonals();
        assert!(listed.iter().enumerate().all(|(i, d)| d.id == i));
        // Held one word per run of equal words, as a store holds them.
        let compact: u64 = listed
            .iter()
            .map(|d| (bs.diagonal_words(d) / bs.diagonal_repeat(d.id).unwrap()) as u64 * 8)
            .sum();
        assert_eq!(diagonals.bytes(), compact);
        assert!(compact * 2 < bs.diagonal_bytes(), "{compact} of {} bytes", bs.diagonal_bytes());
        let ct = encrypted(&bs, &sk, 0);
        let mut scratch = Evaluator::new(bs.context()).scratch();
        let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        let source = WithDiagonals::new(&keys, &diagonals);
        let got = bs.bootstrap(&ct, &source, &mut scratch).unwrap();
        assert_eq!(source.encoded_on_the_fly(), 0, "log N {log_n}, {slots:?} slots");
        assert_eq!(got.as_words(), want.as_words(), "log N {log_n}, {slots:?} slots");

        let seq = bs.access_sequence();
        let keys_only: Vec<KeyUse> = seq
            .iter()
            .filter_map(|u| if let BootstrapUse::Key(k) = u { Some(*k) } else { None })
            .collect();
        assert_eq!(keys_only, bs.key_sequence());
        let ids: Vec<usize> = seq
            .iter()
            .filter_map(|u| if let BootstrapUse::Diagonal(i) = u { Some(*i) } else { None })
            .collect();
        assert_eq!(ids, (0..listed.len()).collect::<Vec<_>>());
    }
}

/// A round trip of the DFTs encodes at other scales: the source answers none of them and
/// the result is the plain keys' one; a diagonal of the wrong length and an id the source
/// does not hold are typed errors.
#[test]
fn other_scales_are_encoded_and_bad_diagonals_are_typed_errors() {
    let (bs, keys, sk) = setup(12, None);
    let mut diagonals = bs.encode_diagonals().unwrap();
    let top = bs.context().params().max_level();
    let mut scratch = Evaluator::new(bs.context()).scratch();
    let x = encrypted(&bs, &sk, top);
    let want = bs.dft_round_trip(&x, &keys, &mut scratch).unwrap();
    let source = WithDiagonals::new(&keys, &diagonals);
    let got = bs.dft_round_trip(&x, &source, &mut scratch).unwrap();
    assert_eq!(got.as_words(), want.as_words());
    assert_eq!(source.encoded_on_the_fly(), bs.diagonals().len());

    let ct = encrypted(&bs, &sk, 0);
    // One word short: neither every word nor one per run of a power-of-two length.
    let short = diagonals.words[3].len() - 1;
    diagonals.words[3].truncate(short);
    let r = bs.bootstrap(&ct, &WithDiagonals::new(&keys, &diagonals), &mut scratch);
    assert!(matches!(r, Err(Error::BufferLength { .. })), "{r:?}");
    diagonals.uses.truncate(3);
    let r = bs.bootstrap(&ct, &WithDiagonals::new(&keys, &diagonals), &mut scratch);
    assert!(matches!(r, Err(Error::MissingDiagonal { id: 3 })), "{r:?}");
    let mut out = vec![0; bs.max_diagonal_words()];
    let past = DiagonalUse { id: bs.diagonals().len(), level: top, scale: 1e10 };
    assert!(matches!(bs.encode_diagonal(&past, &mut out), Err(Error::MissingDiagonal { .. })));
}

/// In-memory keys that hand out a released bootstrapper's coefficients (as a store does from
/// its budget), counting the lookups.
struct WithCoefficients<'a> {
    keys: &'a BootstrapKeys,
    bits: Vec<Vec<u64>>,
    asked: std::sync::atomic::AtomicUsize,
}

impl KeySource for WithCoefficients<'_> {
    type Error = Error;
    type Words<'b>
        = &'b [u64]
    where
        Self: 'b;
    type KeyWords<'b>
        = &'b [u64]
    where
        Self: 'b;

    fn galois(&self, g: u64, level: usize) -> Result<crate::ckks::keys::GaloisKey<&[u64]>> {
        self.keys.galois(g, level)
    }

    fn relin(&self, level: usize) -> Result<crate::ckks::keys::RelinKey<&[u64]>> {
        self.keys.relin(level)
    }

    fn switching(
        &self,
        which: KeyUse,
        level: usize,
    ) -> Result<crate::ckks::keys::KeySwitchKey<&[u64]>> {
        self.keys.switching(which, level)
    }

    fn diagonal_coefficients(&self, id: usize) -> Result<Option<&[u64]>> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.bits.get(id).map(Vec::as_slice))
    }
}

/// A bootstrapper that released its coefficients encodes from the ones its source hands out,
/// word for word as before (a bootstrap and a DFT round trip at other scales, full and sparse
/// slots); without them, or after release for its own encoding and fingerprint, the errors
/// are typed.
#[test]
fn released_coefficients_come_from_the_source_bit_for_bit() {
    for (log_n, slots) in [(12, None), (12, Some(16))] {
        let (mut bs, keys, sk) = setup(log_n, slots);
        let n = bs.context().n();
        let ct = encrypted(&bs, &sk, 0);
        let top = bs.context().params().max_level();
        let x = encrypted(&bs, &sk, top);
        let mut scratch = Evaluator::new(bs.context()).scratch();
        let want = bs.bootstrap(&ct, &keys, &mut scratch).unwrap();
        let want_trip = bs.dft_round_trip(&x, &keys, &mut scratch).unwrap();
        let uses = bs.diagonals();
        let first = uses[0];
        let fingerprint = bs.diagonal_fingerprint(&first).unwrap();
        let bits: Vec<Vec<u64>> = uses
            .iter()
            .map(|d| {
                let mut w = vec![0; n];
                bs.diagonal_coefficient_bits(d.id, &mut w).unwrap();
                w
            })
            .collect();
        assert!(bs.holds_diagonal_coefficients());
        bs.release_diagonal_coefficients();
        assert!(!bs.holds_diagonal_coefficients());

        let source = WithCoefficients { keys: &keys, bits, asked: Default::default() };
        let got = bs.bootstrap(&ct, &source, &mut scratch).unwrap();
        assert_eq!(got.as_words(), want.as_words(), "log N {log_n}, {slots:?} slots");
        let asked = source.asked.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(asked, uses.len());
        let trip = bs.dft_round_trip(&x, &source, &mut scratch).unwrap();
        assert_eq!(trip.as_words(), want_trip.as_words());

        let r = bs.bootstrap(&ct, &keys, &mut scratch);
        assert!(matches!(r, Err(Error::DiagonalCoefficientsReleased { id: 0 })), "{r:?}");
        let mut out = vec![0; bs.max_diagonal_words()];
        let r = bs.encode_diagonal(&first, &mut out);
        assert!(matches!(r, Err(Error::DiagonalCoefficientsReleased { id: 0 })), "{r:?}");
        let r = bs.diagonal_fingerprint(&first);
        assert!(matches!(r, Err(Error::DiagonalCoefficientsReleased { .. })), "{r:?}");
        assert_ne!(fingerprint, 0);
        let r = bs.diagonal_coefficient_bits(0, &mut out);
        assert!(matches!(r, Err(Error::DiagonalCoefficientsReleased { .. })), "{r:?}");
    }
}
