//! RNS polynomials generic over their storage.
//!
//! A `Poly<C>` is a limb-major buffer (limb i in `data[i*N..(i+1)*N]`) plus its shape and
//! representation. Any `C: AsRef<[u64]>` works (a `Vec`, a slice, a buffer pinned in the tiered
//! store), so data is used in place. The buffer may be longer than `limbs * N`; only that prefix
//! belongs to the polynomial, which makes dropping limbs free on every kind of storage.

use crate::error::{Error, Result};
pub use crate::math::representation::Representation;
use crate::math::rns::RnsBasis;

/// An RNS polynomial of degree N with `limbs` residues, stored in `C`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Poly<C> {
    data: C,
    n: usize,
    limbs: usize,
    repr: Representation,
}

/// A polynomial owning its storage.
pub type PolyOwned = Poly<Vec<u64>>;
/// A polynomial borrowing its storage immutably.
pub type PolyView<'a> = Poly<&'a [u64]>;
/// A polynomial borrowing its storage mutably.
pub type PolyMutView<'a> = Poly<&'a mut [u64]>;

impl PolyOwned {
    /// The zero polynomial with `limbs` limbs of degree `n`.
    pub fn zero(n: usize, limbs: usize, repr: Representation) -> Self {
        Self { data: vec![0; n * limbs], n, limbs, repr }
    }
}

impl<C: AsRef<[u64]>> Poly<C> {
    /// Wraps `data` (at least `n * limbs` words, `n` a power of two) as a polynomial.
    pub fn from_container(data: C, n: usize, limbs: usize, repr: Representation) -> Result<Self> {
        if !n.is_power_of_two() {
            return Err(Error::DegreeMismatch { expected: n.next_power_of_two(), found: n });
        }
        let needed = n * limbs;
        let found = data.as_ref().len();
        if found < needed {
            return Err(Error::BufferTooSmall { needed, found });
        }
        Ok(Self { data, n, limbs, repr })
    }

    /// The ring degree N.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Number of RNS limbs.
    pub fn limbs(&self) -> usize {
        self.limbs
    }

    /// Coefficient or NTT form.
    pub fn repr(&self) -> Representation {
        self.repr
    }

    /// The `limbs * N` words of the polynomial, limb-major.
    pub fn as_slice(&self) -> &[u64] {
        &self.data.as_ref()[..self.n * self.limbs]
    }

    /// Limb `i` (N words).
    ///
    /// # Panics
    /// If `i >= self.limbs()`.
    pub fn limb(&self, i: usize) -> &[u64] {
        assert!(i < self.limbs, "limb {i} of {}", self.limbs);
        &self.data.as_ref()[i * self.n..(i + 1) * self.n]
    }

    /// A borrowed view of the whole polynomial.
    pub fn view(&self) -> PolyView<'_> {
        Poly { data: self.as_slice(), n: self.n, limbs: self.limbs, repr: self.repr }
    }

    /// A view of the first `limbs` limbs, without copying (e.g. a lower level).
    pub fn prefix(&self, limbs: usize) -> Result<PolyView<'_>> {
        if limbs > self.limbs {
            return Err(Error::LimbMismatch { expected: self.limbs, found: limbs });
        }
        Ok(Poly { data: &self.data.as_ref()[..self.n * limbs], n: self.n, limbs, repr: self.repr })
    }

    /// A copy with owned storage.
    pub fn to_owned_poly(&self) -> PolyOwned {
        Poly { data: self.as_slice().to_vec(), n: self.n, limbs: self.limbs, repr: self.repr }
    }

    /// The storage back (it may be longer than `limbs * N`).
    pub fn into_inner(self) -> C {
        self.data
    }

    /// Checks that `basis` covers this polynomial (same degree, at least `limbs` primes).
    pub fn check_basis(&self, basis: &RnsBasis) -> Result<()> {
        if basis.n() != self.n {
            return Err(Error::DegreeMismatch { expected: basis.n(), found: self.n });
        }
        if basis.len() < self.limbs {
            return Err(Error::LimbMismatch { expected: basis.len(), found: self.limbs });
        }
        Ok(())
    }

    /// Checks that `other` has the same degree, limb count and representation.
    pub fn check_same_shape<D: AsRef<[u64]>>(&self, other: &Poly<D>) -> Result<()> {
        if other.n != self.n {
            return Err(Error::DegreeMismatch { expected: self.n, found: other.n });
        }
        if other.limbs != self.limbs {
            return Err(Error::LimbMismatch { expected: self.limbs, found: other.limbs });
        }
        if other.repr != self.repr {
            return Err(Error::RepresentationMismatch { expected: self.repr, found: other.repr });
        }
        Ok(())
    }

    fn check_repr(&self, expected: Representation) -> Result<()> {
        if self.repr != expected {
            return Err(Error::RepresentationMismatch { expected, found: self.repr });
        }
        Ok(())
    }
}

impl<C: AsRef<[u64]> + AsMut<[u64]>> Poly<C> {
    /// The `limbs * N` words of the polynomial, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u64] {
        let len = self.n * self.limbs;
        &mut self.data.as_mut()[..len]
    }

    /// Limb `i`, mutably.
    ///
    /// # Panics
    /// If `i >= self.limbs()`.
    pub fn limb_mut(&mut self, i: usize) -> &mut [u64] {
        assert!(i < self.limbs, "limb {i} of {}", self.limbs);
        let n = self.n;
        &mut self.data.as_mut()[i * n..(i + 1) * n]
    }

    /// A mutable borrowed view of the whole polynomial.
    pub fn view_mut(&mut self) -> PolyMutView<'_> {
        let (n, limbs, repr) = (self.n, self.limbs, self.repr);
        Poly { data: self.as_mut_slice(), n, limbs, repr }
    }

    /// A mutable view of the first `limbs` limbs.
    pub fn prefix_mut(&mut self, limbs: usize) -> Result<PolyMutView<'_>> {
        if limbs > self.limbs {
            return Err(Error::LimbMismatch { expected: self.limbs, found: limbs });
        }
        let (n, repr) = (self.n, self.repr);
        Ok(Poly { data: &mut self.data.as_mut()[..n * limbs], n, limbs, repr })
    }

    /// Forgets the last `count` limbs in place (no copy; the words stay in the buffer).
    pub fn drop_last_limbs(&mut self, count: usize) -> Result<()> {
        if count > self.limbs {
            return Err(Error::LimbMismatch { expected: self.limbs, found: count });
        }
        self.limbs -= count;
        Ok(())
    }

    /// Relabels the representation without transforming (for data produced by raw kernels).
    pub fn set_repr(&mut self, repr: Representation) {
        self.repr = repr;
    }

    /// Copies `other` (same degree and limb count) into this polynomial, taking its representation.
    pub fn copy_from<D: AsRef<[u64]>>(&mut self, other: &Poly<D>) -> Result<()> {
        if other.n != self.n {
            return Err(Error::DegreeMismatch { expected: self.n, found: other.n });
        }
        if other.limbs != self.limbs {
            return Err(Error::LimbMismatch { expected: self.limbs, found: other.limbs });
        }
        self.as_mut_slice().copy_from_slice(other.as_slice());
        self.repr = other.repr;
        Ok(())
    }

    /// Sets every coefficient to zero.
    pub fn fill_zero(&mut self) {
        self.as_mut_slice().fill(0);
    }

    /// self += other, limb by limb (both in the same representation).
    pub fn add_assign<D: AsRef<[u64]>>(&mut self, other: &Poly<D>, basis: &RnsBasis) -> Result<()> {
        self.check_same_shape(other)?;
        self.check_basis(basis)?;
        let n = self.n;
        for ((a, b), m) in self
            .as_mut_slice()
            .chunks_exact_mut(n)
            .zip(other.as_slice().chunks_exact(n))
            .zip(basis.moduli())
        {
            m.add_assign_slice(a, b);
        }
        Ok(())
    }

    /// self -= other, limb by limb (both in the same representation).
    pub fn sub_assign<D: AsRef<[u64]>>(&mut self, other: &Poly<D>, basis: &RnsBasis) -> Result<()> {
        self.check_same_shape(other)?;
        self.check_basis(basis)?;
        let n = self.n;
        for ((a, b), m) in self
            .as_mut_slice()
            .chunks_exact_mut(n)
            .zip(other.as_slice().chunks_exact(n))
            .zip(basis.moduli())
        {
            m.sub_assign_slice(a, b);
        }
        Ok(())
    }

    /// self = -self.
    pub fn neg_assign(&mut self, basis: &RnsBasis) -> Result<()> {
        self.check_basis(basis)?;
        let n = self.n;
        for (a, m) in self.as_mut_slice().chunks_exact_mut(n).zip(basis.moduli()) {
            m.neg_assign_slice(a);
        }
        Ok(())
    }

    /// self *= other pointwise; both must be in NTT form (a negacyclic product).
    pub fn mul_assign<D: AsRef<[u64]>>(&mut self, other: &Poly<D>, basis: &RnsBasis) -> Result<()> {
        self.check_repr(Representation::Ntt)?;
        self.check_same_shape(other)?;
        self.check_basis(basis)?;
        let n = self.n;
        for ((a, b), m) in self
            .as_mut_slice()
            .chunks_exact_mut(n)
            .zip(other.as_slice().chunks_exact(n))
            .zip(basis.moduli())
        {
            m.mul_assign_slice(a, b);
        }
        Ok(())
    }

    /// self += a * b pointwise; all three in NTT form.
    pub fn mul_add_assign<D: AsRef<[u64]>, E: AsRef<[u64]>>(
        &mut self,
        a: &Poly<D>,
        b: &Poly<E>,
        basis: &RnsBasis,
    ) -> Result<()> {
        self.check_repr(Representation::Ntt)?;
        self.check_same_shape(a)?;
        self.check_same_shape(b)?;
        self.check_basis(basis)?;
        let n = self.n;
        let limbs = self.as_mut_slice().chunks_exact_mut(n);
        for (((r, x), y), m) in limbs
            .zip(a.as_slice().chunks_exact(n))
            .zip(b.as_slice().chunks_exact(n))
            .zip(basis.moduli())
        {
            m.mul_add_assign_slice(r, x, y);
        }
        Ok(())
    }

    /// Multiplies limb i by `scalars[i]` (reduced mod q_i); valid in either representation.
    pub fn mul_scalar_per_limb(&mut self, scalars: &[u64], basis: &RnsBasis) -> Result<()> {
        self.check_basis(basis)?;
        if scalars.len() != self.limbs {
            return Err(Error::LimbMismatch { expected: self.limbs, found: scalars.len() });
        }
        let n = self.n;
        for ((a, &s), m) in self.as_mut_slice().chunks_exact_mut(n).zip(scalars).zip(basis.moduli())
        {
            m.mul_scalar_assign_slice(a, s);
        }
        Ok(())
    }

    /// Multiplies by the integer `scalar` (reduced mod each q_i).
    pub fn mul_scalar(&mut self, scalar: u64, basis: &RnsBasis) -> Result<()> {
        self.check_basis(basis)?;
        let n = self.n;
        for (a, m) in self.as_mut_slice().chunks_exact_mut(n).zip(basis.moduli()) {
            m.mul_scalar_assign_slice(a, scalar);
        }
        Ok(())
    }

    /// Divides by the last prime with rounding (CKKS rescale) and drops that limb; works in
    /// either representation. `scratch` needs [`RnsBasis::rescale_scratch_len`] words.
    pub fn rescale_last(&mut self, basis: &RnsBasis, scratch: &mut [u64]) -> Result<()> {
        self.check_basis(basis)?;
        let repr = self.repr;
        basis.rescale_last(self.as_mut_slice(), repr, scratch)?;
        self.limbs -= 1;
        Ok(())
    }

    /// Coefficient form → NTT form, limb i with table i of `basis`.
    pub fn to_ntt(&mut self, basis: &RnsBasis) -> Result<()> {
        self.check_repr(Representation::Coefficient)?;
        self.check_basis(basis)?;
        let n = self.n;
        for (a, t) in self.as_mut_slice().chunks_exact_mut(n).zip(basis.tables()) {
            t.forward(a);
        }
        self.repr = Representation::Ntt;
        Ok(())
    }

    /// NTT form → coefficient form.
    pub fn to_coeff(&mut self, basis: &RnsBasis) -> Result<()> {
        self.check_repr(Representation::Ntt)?;
        self.check_basis(basis)?;
        let n = self.n;
        for (a, t) in self.as_mut_slice().chunks_exact_mut(n).zip(basis.tables()) {
            t.inverse(a);
        }
        self.repr = Representation::Coefficient;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::primes::generate_ntt_primes;
    use rand::{Rng, SeedableRng};

    fn basis(log_n: u32, k: usize) -> RnsBasis {
        RnsBasis::new(log_n, &generate_ntt_primes(45, log_n, k, &[]).unwrap()).unwrap()
    }

    fn random(b: &RnsBasis, limbs: usize, rng: &mut impl Rng) -> PolyOwned {
        let n = b.n();
        let mut p = PolyOwned::zero(n, limbs, Representation::Coefficient);
        for i in 0..limbs {
            let q = b.moduli()[i].value();
            p.limb_mut(i).iter_mut().for_each(|x| *x = rng.gen_range(0..q));
        }
        p
    }

    #[test]
    fn ring_ops_agree_limbwise_with_modulus_ops() {
        let b = basis(6, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let x = random(&b, 3, &mut rng);
        let y = random(&b, 3, &mut rng);
        let mut s = x.clone();
        s.add_assign(&y, &b).unwrap();
        s.sub_assign(&y.view(), &b).unwrap();
        assert_eq!(s, x);
        s.neg_assign(&b).unwrap();
        s.add_assign(&x, &b).unwrap();
        assert!(s.as_slice().iter().all(|&v| v == 0));
        let mut t = x.clone();
        t.mul_scalar_per_limb(&[2, 3, 4], &b).unwrap();
        for i in 0..3 {
            let m = b.moduli()[i];
            for j in 0..b.n() {
                assert_eq!(t.limb(i)[j], m.mul(x.limb(i)[j], i as u64 + 2));
            }
        }
        // NTT product through Poly equals NTT product through the raw table.
        let (mut xn, mut yn) = (x.clone(), y.clone());
        xn.to_ntt(&b).unwrap();
        yn.to_ntt(&b).unwrap();
        let mut acc = PolyOwned::zero(b.n(), 3, Representation::Ntt);
        acc.mul_add_assign(&xn, &yn, &b).unwrap();
        acc.mul_add_assign(&xn, &yn, &b).unwrap();
        xn.mul_assign(&yn, &b).unwrap();
        let mut twice = xn.clone();
        twice.mul_scalar(2, &b).unwrap();
        assert_eq!(acc, twice);
        xn.to_coeff(&b).unwrap();
        assert_eq!(xn.repr(), Representation::Coefficient);
    }

    #[test]
    fn shape_errors_and_views() {
        let b = basis(5, 3);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut x = random(&b, 3, &mut rng);
        let y = random(&b, 2, &mut rng);
        assert!(matches!(x.add_assign(&y, &b), Err(Error::LimbMismatch { expected: 3, found: 2 })));
        assert!(matches!(x.mul_assign(&x.clone(), &b), Err(Error::RepresentationMismatch { .. })));
        assert!(matches!(x.to_coeff(&b), Err(Error::RepresentationMismatch { .. })));
        assert!(matches!(x.mul_scalar_per_limb(&[1], &b), Err(Error::LimbMismatch { .. })));
        let small = b.prefix(2).unwrap();
        assert!(matches!(x.neg_assign(&small), Err(Error::LimbMismatch { expected: 2, found: 3 })));
        assert!(matches!(
            x.add_assign(&random(&basis(6, 3), 3, &mut rng), &b),
            Err(Error::DegreeMismatch { .. })
        ));
        assert!(matches!(
            Poly::from_container(&[0u64; 10][..], 4, 3, Representation::Ntt),
            Err(Error::BufferTooSmall { needed: 12, found: 10 })
        ));
        assert!(matches!(
            Poly::from_container(vec![0u64; 12], 3, 4, Representation::Ntt),
            Err(Error::DegreeMismatch { .. })
        ));

        // Views share storage and dropping limbs is free.
        let copy = x.clone();
        let p = copy.prefix(2).unwrap();
        assert_eq!(p.as_slice(), &copy.as_slice()[..2 * b.n()]);
        assert!(copy.prefix(4).is_err());
        let mut buf = copy.clone().into_inner();
        let mut v =
            Poly::from_container(&mut buf[..], b.n(), 3, Representation::Coefficient).unwrap();
        v.drop_last_limbs(1).unwrap();
        assert_eq!(v.limbs(), 2);
        assert!(v.drop_last_limbs(3).is_err());
        let y2 = y.clone();
        v.add_assign(&y2, &b).unwrap();
        assert_eq!(buf[2 * b.n()..], copy.as_slice()[2 * b.n()..]);
        let mut z = x.prefix_mut(1).unwrap();
        z.fill_zero();
        assert!(x.limb(0).iter().all(|&c| c == 0));
        assert_eq!(x.limb(1), copy.limb(1));
        let mut r = copy.clone();
        let mut scratch = vec![0u64; b.rescale_scratch_len()];
        r.rescale_last(&b, &mut scratch).unwrap();
        assert_eq!(r.limbs(), 2);
        r.rescale_last(&b, &mut scratch).unwrap();
        assert!(matches!(
            r.rescale_last(&b, &mut scratch),
            Err(Error::LimbMismatch { expected: 2, found: 1 })
        ));
        let mut w = PolyOwned::zero(b.n(), 3, Representation::Ntt);
        w.copy_from(&copy).unwrap();
        assert_eq!(w, copy);
    }
}
