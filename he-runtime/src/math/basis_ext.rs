//! Fast RNS basis extension (the "fast base conversion" of hybrid key switching), ModUp and
//! ModDown.
//!
//! For x given by residues x_i modulo Q = Π q_i, with y_i = [x_i·(Q/q_i)^{-1}]_{q_i}:
//! - **approximate**: Σ_i y_i·(Q/q_i) mod p = (x + u·Q) mod p for some 0 <= u < k;
//! - **centered** (HPS): subtracting r·Q with r = round(Σ y_i/q_i) (computed in f64) gives the
//!   residue of the centered representative of x in (−Q/2, Q/2], exactly except for values
//!   within ~k·2^-52·Q of ±Q/2.
//!
//! The accumulation runs on AVX-512 IFMA when every prime is below 2^50, on AVX-512 F/DQ for
//! wider ones (bootstrapping's EvalMod primes), else portably; all give identical words.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::math::poly::Representation;
use crate::math::rns::RnsBasis;
use crate::math::simd;
use crate::math::zq::Modulus;

/// Which conversion a [`ModUp`] performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Conversion {
    /// x + u·Q with a small unknown u (cheapest; what hybrid key switching needs).
    Approximate,
    /// The centered representative of x (one more f64 pass).
    Centered,
}

/// Precomputed constants to extend residues from basis `from` to basis `to`.
#[derive(Clone, Debug)]
pub struct BasisConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    /// [(Q/q_i)^{-1}]_{q_i}.
    q_hat_inv: Vec<u64>,
    /// (Q/q_i) mod p_t, row t holds the k values for target t.
    q_hat_mod_p: Vec<u64>,
    /// Q mod p_t with Shoup companion.
    q_mod_p: Vec<(u64, u64)>,
    inv_q: Vec<f64>,
    /// Terms a u128 accumulator takes before it must be folded (portable path).
    lazy_terms: usize,
    /// IFMA fold constants per target, when every prime allows the IFMA path.
    /// IFMA folds per target (None for a target of 50 bits or more); the whole field is None
    /// when a source prime is too wide or the CPU lacks IFMA.
    ifma: Option<Vec<Option<simd::ExtendFold>>>,
    /// Per target not served by IFMA, the Shoup companions of its row for the AVX-512 F/DQ
    /// kernel (bootstrapping's 60-bit primes, as targets or among the sources).
    wide: Option<Vec<Option<Vec<u64>>>>,
    /// Whether the centering counts run on AVX-512 DQ (any prime width: they are f64 sums).
    simd_counts: bool,
}

/// Coefficients per task of the centering counts (a multiple of 8 for the SIMD kernel).
const COUNT_CHUNK: usize = 2048;

impl BasisConverter {
    /// Constants for extending from the distinct primes `from` to the primes `to`.
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Result<Self> {
        if from.is_empty() {
            return Err(Error::LimbMismatch { expected: 1, found: 0 });
        }
        let prod_except = |m: &Modulus, skip: usize| {
            from.iter()
                .enumerate()
                .filter(|&(j, _)| j != skip)
                .fold(1u64, |acc, (_, q)| m.mul(acc, m.reduce(q.value())))
        };
        let q_hat_inv = from
            .iter()
            .enumerate()
            .map(|(i, m)| m.inv(prod_except(m, i)))
            .collect::<Result<Vec<_>>>()?;
        let mut q_hat_mod_p = Vec::with_capacity(from.len() * to.len());
        let mut q_mod_p = Vec::with_capacity(to.len());
        for p in to {
            for i in 0..from.len() {
                q_hat_mod_p.push(prod_except(p, i));
            }
            let q = p.mul(prod_except(p, 0), p.reduce(from[0].value()));
            q_mod_p.push((q, p.shoup(q)));
        }
        let max_from = from.iter().map(|m| m.value()).max().unwrap_or(0) as u128;
        let max_to = to.iter().map(|m| m.value()).max().unwrap_or(0) as u128;
        let lazy_terms = if to.is_empty() {
            1
        } else {
            ((u128::MAX - max_to) / (max_from * max_to)).min(1 << 20) as usize
        };
        let fits = |m: &Modulus| m.bits() <= simd::IFMA_MAX_MODULUS_BITS;
        // Per target: a chain that mixes wide primes (bootstrapping's EvalMod levels) keeps the
        // kernel for its narrow targets.
        let ifma = (simd::ifma_available() && from.iter().all(fits))
            .then(|| to.iter().map(|m| fits(m).then(|| simd::ExtendFold::new(m))).collect());
        let served_by_ifma = |t: usize| {
            ifma.as_ref().is_some_and(|f: &Vec<Option<simd::ExtendFold>>| f[t].is_some())
        };
        let k = from.len();
        let wide = simd::dq_available().then(|| {
            to.iter()
                .enumerate()
                .map(|(t, p)| {
                    (!served_by_ifma(t)).then(|| {
                        q_hat_mod_p[t * k..(t + 1) * k].iter().map(|&w| p.shoup(w)).collect()
                    })
                })
                .collect()
        });
        Ok(Self {
            from: from.to_vec(),
            to: to.to_vec(),
            q_hat_inv,
            q_hat_mod_p,
            q_mod_p,
            inv_q: from.iter().map(|m| 1.0 / m.value() as f64).collect(),
            lazy_terms,
            ifma,
            wide,
            simd_counts: true,
        })
    }

    /// Source primes.
    pub fn from_moduli(&self) -> &[Modulus] {
        &self.from
    }

    /// Target primes.
    pub fn to_moduli(&self) -> &[Modulus] {
        &self.to
    }

    /// Whether the accumulation runs on the IFMA kernel (for every target).
    pub fn uses_ifma(&self) -> bool {
        self.ifma.as_ref().is_some_and(|f| f.iter().all(Option::is_some))
    }

    /// Forces the portable accumulation (for tests and benchmarks).
    pub fn force_portable(&mut self) {
        self.ifma = None;
        self.wide = None;
        self.simd_counts = false;
    }

    /// Words of scratch [`convert`](Self::convert) needs for degree `n`.
    pub fn scratch_len(&self, n: usize) -> usize {
        (self.from.len() + 1) * n
    }

    /// Step one, per source limb i: y = x·(Q/q_i)^{-1} mod q_i (coefficient form, x < q_i).
    ///
    /// # Panics
    /// If `i` is out of range or the slices differ in length.
    pub fn prepare_limb(&self, i: usize, x: &[u64], y: &mut [u64]) {
        y.copy_from_slice(x);
        self.prepare_limb_in_place(i, y);
    }

    /// [`prepare_limb`](Self::prepare_limb) in place.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn prepare_limb_in_place(&self, i: usize, y: &mut [u64]) {
        // The slice helper runs the IFMA kernel when q_i < 2^50.
        self.from[i].mul_scalar_assign_slice(y, self.q_hat_inv[i]);
    }

    /// The centering counts `r[c] = round(Σ_i y_i[c] / q_i)` (ties to even) from prepared limbs
    /// `y` (k·n words).
    ///
    /// # Panics
    /// If `y.len() != k · r.len()`.
    pub fn rounding_counts(&self, y: &[u64], r: &mut [u64]) {
        let n = r.len();
        assert_eq!(y.len(), self.from.len() * n);
        // Coefficients are independent: large rings split them over the thread pool in
        // fixed chunks (the same words for any thread count); small ones stay on one thread.
        r.par_chunks_mut(COUNT_CHUNK)
            .enumerate()
            .for_each(|(c, rc)| self.rounding_counts_chunk(y, n, c * COUNT_CHUNK, rc));
    }

    /// The counts of coefficients `start..start + r.len()` of limbs of `n` words.
    fn rounding_counts_chunk(&self, y: &[u64], n: usize, start: usize, r: &mut [u64]) {
        if self.simd_counts && simd::rounding_counts(y, n, start, &self.inv_q, r) {
            return;
        }
        const CHUNK: usize = 64;
        let mut acc = [0f64; CHUNK];
        for (ci, rc) in r.chunks_mut(CHUNK).enumerate() {
            let base = start + ci * CHUNK;
            let len = rc.len();
            acc[..len].fill(0.0);
            for (i, &inv) in self.inv_q.iter().enumerate() {
                for (a, &v) in acc[..len].iter_mut().zip(&y[i * n + base..i * n + base + len]) {
                    *a += v as f64 * inv;
                }
            }
            for (o, &a) in rc.iter_mut().zip(&acc[..len]) {
                *o = a.round_ties_even() as u64;
            }
        }
    }

    /// Step two, per target limb t: out = Σ_i y_i·(Q/q_i) mod p_t (approximate conversion).
    ///
    /// # Panics
    /// If `t` is out of range or `y.len() != k · out.len()`.
    pub fn extend_limb(&self, t: usize, y: &[u64], out: &mut [u64]) {
        let n = out.len();
        self.extend_block(t, y, n, 0, None, out);
    }

    /// Step two with the centering counts of [`rounding_counts`](Self::rounding_counts):
    /// the residue modulo p_t of the centered representative.
    ///
    /// # Panics
    /// If `t` is out of range or the lengths disagree.
    pub fn extend_limb_centered(&self, t: usize, y: &[u64], counts: &[u64], out: &mut [u64]) {
        assert_eq!(counts.len(), out.len());
        let n = out.len();
        self.extend_block(t, y, n, 0, Some(counts), out);
    }

    /// Target t for coefficients `start..start + out.len()` of prepared limbs `y` (k limbs of
    /// `n` words); `counts` covers the same block.
    fn extend_block(
        &self,
        t: usize,
        y: &[u64],
        n: usize,
        start: usize,
        counts: Option<&[u64]>,
        out: &mut [u64],
    ) {
        let k = self.from.len();
        let len = out.len();
        assert!(y.len() == k * n && start + len <= n, "basis extension block");
        let row = &self.q_hat_mod_p[t * k..(t + 1) * k];
        let (q_mod_p, q_mod_p_shoup) = self.q_mod_p[t];
        let fold = self.ifma.as_ref().and_then(|f| f[t]).filter(|_| len.is_multiple_of(8));
        if let Some(fold) = fold {
            let corr = counts.map(|counts| simd::Correction { counts, q_mod_p, q_mod_p_shoup });
            simd::extend_block(y, n, start, row, fold, corr, out);
            return;
        }
        let p = &self.to[t];
        let wide =
            self.wide.as_ref().and_then(|w| w[t].as_deref()).filter(|_| len.is_multiple_of(8));
        if let Some(row_shoup) = wide {
            let corr = counts.map(|counts| simd::Correction { counts, q_mod_p, q_mod_p_shoup });
            simd::extend_block_wide(y, n, start, row, row_shoup, p.value(), corr, out);
            return;
        }
        const CHUNK: usize = 64;
        let mut acc = [0u128; CHUNK];
        for (ci, oc) in out.chunks_mut(CHUNK).enumerate() {
            let base = start + ci * CHUNK;
            let clen = oc.len();
            acc[..clen].fill(0);
            for (i, &w) in row.iter().enumerate() {
                for (a, &v) in acc[..clen].iter_mut().zip(&y[i * n + base..i * n + base + clen]) {
                    *a += v as u128 * w as u128;
                }
                if (i + 1) % self.lazy_terms == 0 {
                    acc[..clen].iter_mut().for_each(|a| *a = p.reduce_u128(*a) as u128);
                }
            }
            match counts {
                None => {
                    for (o, &a) in oc.iter_mut().zip(&acc[..clen]) {
                        *o = p.reduce_u128(a);
                    }
                }
                Some(cnt) => {
                    let cnt = &cnt[ci * CHUNK..ci * CHUNK + clen];
                    for ((o, &a), &r) in oc.iter_mut().zip(&acc[..clen]).zip(cnt) {
                        let s = p.mul_shoup(r, q_mod_p, q_mod_p_shoup);
                        *o = p.sub(p.reduce_u128(a), s);
                    }
                }
            }
        }
    }

    /// Extends coefficient-form `input` (k limbs of n words) to `output` (one limb per target).
    /// `scratch` needs [`scratch_len`](Self::scratch_len) words.
    pub fn convert(
        &self,
        input: &[u64],
        output: &mut [u64],
        conversion: Conversion,
        scratch: &mut [u64],
    ) -> Result<()> {
        let k = self.from.len();
        let n = input.len() / k;
        check_len(input.len(), k * n)?;
        check_len(output.len(), self.to.len() * n)?;
        if n == 0 {
            return Ok(());
        }
        let needed = self.scratch_len(n);
        if scratch.len() < needed {
            return Err(Error::BufferTooSmall { needed, found: scratch.len() });
        }
        let (y, rest) = scratch.split_at_mut(k * n);
        for (i, (x, yi)) in input.chunks_exact(n).zip(y.chunks_exact_mut(n)).enumerate() {
            self.prepare_limb(i, x, yi);
        }
        self.extend_all(y, output, conversion, &mut rest[..n]);
        Ok(())
    }

    /// Step two for every target: `output` gets one limb per target from prepared `y`
    /// (k limbs of n = `counts.len()` words; `counts` is scratch for the centering counts).
    /// Coefficients are processed in blocks so each block of the source limbs stays in cache
    /// while every target is produced from it.
    ///
    /// # Panics
    /// If `y.len() != k·n` or `output.len() != |to|·n`.
    pub fn extend_all(
        &self,
        y: &[u64],
        output: &mut [u64],
        conversion: Conversion,
        counts: &mut [u64],
    ) {
        /// 512 words × k source limbs (≈ 48 KiB for a 12-prime digit) stay in L2.
        const BLOCK: usize = 512;
        let n = counts.len();
        assert_eq!(output.len(), self.to.len() * n, "basis extension output");
        if conversion == Conversion::Centered {
            self.rounding_counts(y, counts);
        }
        let mut start = 0;
        while start < n {
            let len = BLOCK.min(n - start);
            for (t, o) in output.chunks_exact_mut(n).enumerate() {
                let cnt = (conversion == Conversion::Centered).then(|| &counts[start..start + len]);
                self.extend_block(t, y, n, start, cnt, &mut o[start..start + len]);
            }
            start += len;
        }
    }
}

fn check_len(found: usize, expected: usize) -> Result<()> {
    if found != expected {
        return Err(Error::BufferTooSmall { needed: expected, found });
    }
    Ok(())
}

/// ModUp: residues over a basis (e.g. one key-switching digit Q_j) extended to another basis
/// (e.g. the complement (Q_l \ Q_j) ∪ P), in coefficient or NTT form.
#[derive(Clone, Debug)]
pub struct ModUp {
    from: RnsBasis,
    to: RnsBasis,
    conv: BasisConverter,
    conversion: Conversion,
}

impl ModUp {
    /// A plan from `from` to `to` (same degree, disjoint primes).
    pub fn new(from: &RnsBasis, to: &RnsBasis, conversion: Conversion) -> Result<Self> {
        if from.n() != to.n() {
            return Err(Error::DegreeMismatch { expected: from.n(), found: to.n() });
        }
        let conv = BasisConverter::new(from.moduli(), to.moduli())?;
        Ok(Self { from: from.clone(), to: to.clone(), conv, conversion })
    }

    /// The converter (e.g. to force the portable path).
    pub fn converter_mut(&mut self) -> &mut BasisConverter {
        &mut self.conv
    }

    /// Scratch words [`apply`](Self::apply) needs.
    pub fn scratch_len(&self) -> usize {
        self.conv.scratch_len(self.from.n())
    }

    /// `input`: |from| limbs, `output`: |to| limbs, both in representation `repr` (NTT input is
    /// transformed back internally; the output is transformed forward).
    pub fn apply(
        &self,
        input: &[u64],
        repr: Representation,
        output: &mut [u64],
        scratch: &mut [u64],
    ) -> Result<()> {
        let n = self.from.n();
        let k = self.from.len();
        check_len(input.len(), k * n)?;
        check_len(output.len(), self.to.len() * n)?;
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(Error::BufferTooSmall { needed, found: scratch.len() });
        }
        let (y, rest) = scratch.split_at_mut(k * n);
        for (i, (x, yi)) in input.chunks_exact(n).zip(y.chunks_exact_mut(n)).enumerate() {
            yi.copy_from_slice(x);
            if repr == Representation::Ntt {
                self.from.tables()[i].inverse(yi);
            }
            self.conv.prepare_limb_in_place(i, yi);
        }
        self.conv.extend_all(y, output, self.conversion, &mut rest[..n]);
        if repr == Representation::Ntt {
            self.to.forward(output)?;
        }
        Ok(())
    }
}

/// ModDown: x over Q ∪ P → round(x / P) over Q (the end of hybrid key switching).
#[derive(Clone, Debug)]
pub struct ModDown {
    q: RnsBasis,
    p: RnsBasis,
    conv: BasisConverter,
    p_inv: Vec<(u64, u64)>,
}

impl ModDown {
    /// A plan for the basis `q` (output) and the special primes `p` (divided out).
    pub fn new(q: &RnsBasis, p: &RnsBasis) -> Result<Self> {
        if q.n() != p.n() {
            return Err(Error::DegreeMismatch { expected: q.n(), found: p.n() });
        }
        let conv = BasisConverter::new(p.moduli(), q.moduli())?;
        let p_inv = q
            .moduli()
            .iter()
            .map(|m| {
                let pm = p.moduli().iter().fold(1u64, |acc, pj| m.mul(acc, m.reduce(pj.value())));
                let inv = m.inv(pm)?;
                Ok((inv, m.shoup(inv)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { q: q.clone(), p: p.clone(), conv, p_inv })
    }

    /// The converter (e.g. to force the portable path).
    pub fn converter_mut(&mut self) -> &mut BasisConverter {
        &mut self.conv
    }

    /// Scratch words [`apply_in_place`](Self::apply_in_place) needs.
    pub fn scratch_len(&self) -> usize {
        (self.p.len() + 1 + self.q.len()) * self.q.n()
    }

    /// `data` holds the |Q| limbs then the |P| limbs in representation `repr`; afterwards its
    /// first |Q| limbs hold round(x/P) in the same representation (the P limbs are clobbered).
    pub fn apply_in_place(
        &self,
        data: &mut [u64],
        repr: Representation,
        scratch: &mut [u64],
    ) -> Result<()> {
        let n = self.q.n();
        let (l, k) = (self.q.len(), self.p.len());
        check_len(data.len(), (l + k) * n)?;
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(Error::BufferTooSmall { needed, found: scratch.len() });
        }
        let (q_part, p_part) = data.split_at_mut(l * n);
        let (y, rest) = scratch.split_at_mut(k * n);
        let (counts, ext) = rest.split_at_mut(n);
        let ext = &mut ext[..l * n];
        for (i, (x, yi)) in p_part.chunks_exact_mut(n).zip(y.chunks_exact_mut(n)).enumerate() {
            if repr == Representation::Ntt {
                self.p.tables()[i].inverse(x);
            }
            self.conv.prepare_limb(i, x, yi);
        }
        self.conv.extend_all(y, ext, Conversion::Centered, counts);
        let limbs = q_part.chunks_exact_mut(n).zip(ext.chunks_exact_mut(n));
        for (t, ((d, e), m)) in limbs.zip(self.q.moduli()).enumerate() {
            if repr == Representation::Ntt {
                self.q.tables()[t].forward(e);
            }
            m.sub_mul_scalar_assign_slice(d, e, self.p_inv[t].0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::bigint;
    use crate::math::crt::CrtReconstructor;
    use crate::math::primes::generate_ntt_primes;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    /// (value mod m) for a signed big integer given as magnitude words and sign.
    fn signed_rem(mag: &[u64], neg: bool, m: &Modulus) -> u64 {
        let r = bigint::rem(mag, m);
        if neg {
            m.neg(r)
        } else {
            r
        }
    }

    /// Centered representative of residues over `ms`: (magnitude words, is_negative).
    fn centered(ms: &[Modulus], res: &[u64]) -> (Vec<u64>, bool) {
        let crt = CrtReconstructor::new(ms).unwrap();
        let mut x = vec![0u64; crt.words()];
        crt.reconstruct(res, &mut x).unwrap();
        let mut twice = x.clone();
        bigint::add_assign(&mut twice, &x);
        if bigint::ge(&twice, crt.modulus_product()) && twice != crt.modulus_product() {
            let mut neg = crt.modulus_product().to_vec();
            bigint::negate(&mut x);
            bigint::add_assign(&mut neg, &x);
            (neg, true)
        } else {
            (x, false)
        }
    }

    fn basis(bits: u32, log_n: u32, k: usize, exclude: &[u64]) -> RnsBasis {
        RnsBasis::new(log_n, &generate_ntt_primes(bits, log_n, k, exclude).unwrap()).unwrap()
    }

    fn random_limbs(b: &RnsBasis, rng: &mut impl Rng) -> Vec<u64> {
        b.moduli()
            .iter()
            .flat_map(|m| (0..b.n()).map(|_| rng.gen_range(0..m.value())).collect::<Vec<_>>())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        /// Centered and approximate ModUp against big-integer CRT on small bases, both paths.
        #[test]
        fn mod_up_matches_big_integers(k in 1usize..5, m in 1usize..5, bits_i in 0usize..3, seed in any::<u64>(), ntt in any::<bool>()) {
            let (fb, tb) = [(40u32, 50u32), (50, 50), (61, 58)][bits_i];
            let log_n = 4;
            let from = basis(fb, log_n, k, &[]);
            let to = basis(tb, log_n, m, &from.moduli().iter().map(|q| q.value()).collect::<Vec<_>>());
            let n = from.n();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let x = random_limbs(&from, &mut rng);
            for force_portable in [false, true] {
                for conversion in [Conversion::Centered, Conversion::Approximate] {
                    let mut up = ModUp::new(&from, &to, conversion).unwrap();
                    if force_portable {
                        up.converter_mut().force_portable();
                    }
                    let mut input = x.clone();
                    let repr = if ntt { Representation::Ntt } else { Representation::Coefficient };
                    if ntt {
                        from.forward(&mut input).unwrap();
                    }
                    let mut out = vec![0u64; m * n];
                    let mut scratch = vec![0u64; up.scratch_len()];
                    up.apply(&input, repr, &mut out, &mut scratch).unwrap();
                    if ntt {
                        to.inverse(&mut out).unwrap();
                    }
                    for c in 0..n {
                        let res: Vec<u64> = (0..k).map(|i| x[i * n + c]).collect();
                        let (mag, neg) = centered(from.moduli(), &res);
                        let got: Vec<u64> = (0..m).map(|t| out[t * n + c]).collect();
                        let exact: Vec<u64> = to.moduli().iter().map(|p| signed_rem(&mag, neg, p)).collect();
                        match conversion {
                            Conversion::Centered => prop_assert_eq!(&got, &exact),
                            Conversion::Approximate => {
                                // got = x + u·Q for one u in [0, k], x in [0, Q).
                                let crt = CrtReconstructor::new(from.moduli()).unwrap();
                                let mut v = vec![0u64; crt.words() + 1];
                                crt.reconstruct(&res, &mut v[..crt.words()]).unwrap();
                                let ok = (0..=k as u64).any(|u| {
                                    let mut w = v.clone();
                                    bigint::mul_small_add(&mut w, crt.modulus_product(), u);
                                    to.moduli().iter().zip(&got).all(|(p, &g)| bigint::rem(&w, p) == g)
                                });
                                prop_assert!(ok);
                            }
                        }
                    }
                }
            }
        }

        /// ModDown of x = a·P + e with |e| < P/2 returns a, in both representations.
        #[test]
        fn mod_down_divides_with_rounding(l in 1usize..5, k in 1usize..4, bits_i in 0usize..2, seed in any::<u64>(), ntt in any::<bool>()) {
            let (qb, pb) = [(40u32, 50u32), (58, 61)][bits_i];
            let log_n = 4;
            let q = basis(qb, log_n, l, &[]);
            let p = basis(pb, log_n, k, &[]);
            let n = q.n();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let a = random_limbs(&q, &mut rng);
            let e = random_limbs(&p, &mut rng);
            // Build the residues of a·P + e over Q ∪ P.
            let pm: Vec<u64> = q.moduli().iter().map(|m| p.moduli().iter().fold(1, |acc, pj| m.mul(acc, m.reduce(pj.value())))).collect();
            let mut data = vec![0u64; (l + k) * n];
            for c in 0..n {
                let res: Vec<u64> = (0..k).map(|j| e[j * n + c]).collect();
                let (mag, neg) = centered(p.moduli(), &res);
                for (i, m) in q.moduli().iter().enumerate() {
                    data[i * n + c] = m.add(m.mul(a[i * n + c], pm[i]), signed_rem(&mag, neg, m));
                }
                for j in 0..k {
                    data[(l + j) * n + c] = e[j * n + c];
                }
            }
            let qp = q.concat(&p).unwrap();
            for force_portable in [false, true] {
                let mut md = ModDown::new(&q, &p).unwrap();
                if force_portable {
                    md.converter_mut().force_portable();
                }
                let mut d = data.clone();
                let repr = if ntt { Representation::Ntt } else { Representation::Coefficient };
                if ntt {
                    qp.forward(&mut d).unwrap();
                }
                let mut scratch = vec![0u64; md.scratch_len()];
                md.apply_in_place(&mut d, repr, &mut scratch).unwrap();
                if ntt {
                    q.inverse(&mut d[..l * n]).unwrap();
                }
                prop_assert_eq!(&d[..l * n], &a[..]);
            }
        }
    }

    #[test]
    fn ifma_and_portable_extension_agree_at_scale() {
        // 12 source primes (one key-switching digit) to 24 targets, N = 2^12, 50-bit primes.
        let from = basis(50, 12, 12, &[]);
        let to = basis(49, 12, 24, &[]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let x = random_limbs(&from, &mut rng);
        let mut conv = BasisConverter::new(from.moduli(), to.moduli()).unwrap();
        if !conv.uses_ifma() {
            eprintln!("skipped: no avx512ifma on this CPU");
            return;
        }
        let n = from.n();
        let mut scratch = vec![0u64; conv.scratch_len(n)];
        for conversion in [Conversion::Approximate, Conversion::Centered] {
            let mut a = vec![0u64; 24 * n];
            conv.convert(&x, &mut a, conversion, &mut scratch).unwrap();
            let mut portable = conv.clone();
            portable.force_portable();
            let mut b = vec![0u64; 24 * n];
            portable.convert(&x, &mut b, conversion, &mut scratch).unwrap();
            assert_eq!(a, b);
        }
        // 20 source primes exercise the chunked IFMA accumulation (15 terms per chunk).
        let from = basis(50, 12, 20, &[]);
        let x = random_limbs(&from, &mut rng);
        conv = BasisConverter::new(from.moduli(), to.moduli()).unwrap();
        let mut scratch = vec![0u64; conv.scratch_len(n)];
        let mut a = vec![0u64; 24 * n];
        conv.convert(&x, &mut a, Conversion::Centered, &mut scratch).unwrap();
        conv.force_portable();
        let mut b = vec![0u64; 24 * n];
        conv.convert(&x, &mut b, Conversion::Centered, &mut scratch).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn narrow_targets_keep_ifma_next_to_wide_ones() {
        // Bootstrapping chains mix 60-bit EvalMod primes with IFMA-sized ones: the narrow
        // targets run the kernel, the wide ones the portable path, and both agree with it.
        let from = basis(50, 12, 6, &[]);
        let narrow = basis(
            48,
            12,
            4,
            from.moduli().iter().map(|m| m.value()).collect::<Vec<_>>().as_slice(),
        );
        let wide = basis(60, 12, 3, &[]);
        let to: Vec<Modulus> = narrow.moduli().iter().chain(wide.moduli()).copied().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let x = random_limbs(&from, &mut rng);
        let conv = BasisConverter::new(from.moduli(), &to).unwrap();
        if !simd::ifma_available() {
            eprintln!("skipped: no avx512ifma on this CPU");
            return;
        }
        assert!(!conv.uses_ifma());
        assert!(conv.ifma.as_ref().is_some_and(|f| f.iter().filter(|x| x.is_some()).count() == 4));
        let n = from.n();
        let mut scratch = vec![0u64; conv.scratch_len(n)];
        let mut a = vec![0u64; to.len() * n];
        conv.convert(&x, &mut a, Conversion::Centered, &mut scratch).unwrap();
        let mut portable = conv.clone();
        portable.force_portable();
        let mut b = vec![0u64; to.len() * n];
        portable.convert(&x, &mut b, Conversion::Centered, &mut scratch).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn wide_primes_extend_on_avx512_as_on_the_portable_path() {
        // EvalMod's 60-bit primes among the sources and the targets, as in a bootstrapping
        // chain's key switch; 13 sources so the portable path folds lazily too.
        let from = basis(60, 12, 13, &[]);
        let used: Vec<u64> = from.moduli().iter().map(|m| m.value()).collect();
        let to_wide = basis(61, 12, 3, &used);
        let to_narrow = basis(46, 12, 3, &used);
        let to: Vec<Modulus> = to_narrow.moduli().iter().chain(to_wide.moduli()).copied().collect();
        let conv = BasisConverter::new(from.moduli(), &to).unwrap();
        if !simd::dq_available() {
            eprintln!("skipped: no avx512dq on this CPU");
            return;
        }
        assert!(conv.wide.as_ref().is_some_and(|w| w.iter().all(Option::is_some)));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(60);
        let mut x = random_limbs(&from, &mut rng);
        // The largest residues, where a lazy bound would first fail.
        let n = from.n();
        for (i, m) in from.moduli().iter().enumerate() {
            x[i * n] = m.value() - 1;
        }
        let mut scratch = vec![0u64; conv.scratch_len(n)];
        for conversion in [Conversion::Approximate, Conversion::Centered] {
            let mut a = vec![0u64; to.len() * n];
            conv.convert(&x, &mut a, conversion, &mut scratch).unwrap();
            let mut portable = conv.clone();
            portable.force_portable();
            let mut b = vec![0u64; to.len() * n];
            portable.convert(&x, &mut b, conversion, &mut scratch).unwrap();
            assert_eq!(a, b, "{conversion:?}");
        }
    }

    #[test]
    fn shape_errors() {
        let q = basis(40, 4, 2, &[]);
        let p = basis(50, 4, 1, &[]);
        let md = ModDown::new(&q, &p).unwrap();
        let mut d = vec![0u64; 2 * 16];
        let mut s = vec![0u64; md.scratch_len()];
        assert!(matches!(
            md.apply_in_place(&mut d, Representation::Ntt, &mut s),
            Err(Error::BufferTooSmall { .. })
        ));
        let mut d = vec![0u64; 3 * 16];
        assert!(matches!(
            md.apply_in_place(&mut d, Representation::Ntt, &mut s[..10]),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(matches!(ModDown::new(&q, &q), Err(Error::NotInvertible { .. })));
        assert!(matches!(
            ModDown::new(&q, &basis(50, 5, 1, &[])),
            Err(Error::DegreeMismatch { .. })
        ));
        let up = ModUp::new(&q, &p, Conversion::Approximate).unwrap();
        let mut out = vec![0u64; 16];
        let mut s = vec![0u64; up.scratch_len()];
        assert!(matches!(
            up.apply(&d[..16], Representation::Ntt, &mut out, &mut s),
            Err(Error::BufferTooSmall { .. })
        ));
        assert!(BasisConverter::new(&[], p.moduli()).is_err());
    }
}
