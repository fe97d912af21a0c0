//! Minimal little-endian multiprecision helpers for CRT reconstruction (no allocation).

use crate::math::zq::Modulus;

/// acc += a · s; `acc` must be longer than `a` so the final carry has room.
pub(crate) fn mul_small_add(acc: &mut [u64], a: &[u64], s: u64) {
    let mut carry = 0u128;
    for (i, &w) in a.iter().enumerate() {
        let t = w as u128 * s as u128 + acc[i] as u128 + carry;
        acc[i] = t as u64;
        carry = t >> 64;
    }
    for x in acc[a.len()..].iter_mut() {
        if carry == 0 {
            break;
        }
        let t = *x as u128 + carry;
        *x = t as u64;
        carry = t >> 64;
    }
}

/// acc -= a · s modulo 2^(64·len): two's complement, the borrow out of the top is dropped.
pub(crate) fn mul_small_sub(acc: &mut [u64], a: &[u64], s: u64) {
    let mut borrow = 0u128;
    for (i, x) in acc.iter_mut().enumerate() {
        let w = if i < a.len() { a[i] } else { 0 };
        let t = w as u128 * s as u128 + borrow;
        let (d, b) = x.overflowing_sub(t as u64);
        *x = d;
        borrow = (t >> 64) + b as u128;
    }
}

/// acc += a modulo 2^(64·len).
pub(crate) fn add_assign(acc: &mut [u64], a: &[u64]) {
    let mut carry = false;
    for (i, x) in acc.iter_mut().enumerate() {
        let w = if i < a.len() { a[i] } else { 0 };
        let (s1, c1) = x.overflowing_add(w);
        let (s2, c2) = s1.overflowing_add(carry as u64);
        *x = s2;
        carry = c1 || c2;
    }
}

/// Two's complement negation in place.
pub(crate) fn negate(acc: &mut [u64]) {
    let mut carry = true;
    for x in acc.iter_mut() {
        let (s, c) = (!*x).overflowing_add(carry as u64);
        *x = s;
        carry = c;
    }
}

/// a >= b, comparing as unsigned numbers (b may be shorter).
pub(crate) fn ge(a: &[u64], b: &[u64]) -> bool {
    for i in (0..a.len().max(b.len())).rev() {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        if x != y {
            return x > y;
        }
    }
    true
}

/// The unsigned number as the nearest f64 (within one part in 2^63; infinite beyond 2^1024).
pub(crate) fn to_f64(a: &[u64]) -> f64 {
    let Some(h) = a.iter().rposition(|&w| w != 0) else { return 0.0 };
    if h == 0 {
        return a[0] as f64;
    }
    let top = ((a[h] as u128) << 64) | a[h - 1] as u128;
    let shift = 64 * (h as i32 - 1);
    top as f64 * 2f64.powi(shift)
}

/// The number modulo q (Horner from the top word).
pub(crate) fn rem(a: &[u64], q: &Modulus) -> u64 {
    a.iter().rev().fold(0u64, |r, &w| q.reduce_u128(((r as u128) << 64) | w as u128))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_u128(a in any::<u64>(), b in any::<u64>(), s in any::<u64>(), c in any::<u128>()) {
            let mut acc = [c as u64, (c >> 64) as u64, 0, 0];
            mul_small_add(&mut acc, &[a, b], s);
            // Reference in 256-bit via two u128 halves: (b·2^64 + a)·s + c.
            let lo = a as u128 * s as u128;
            let hi = b as u128 * s as u128;
            let sum_lo = (lo as u64) as u128 + (c as u64) as u128;
            let w0 = sum_lo as u64;
            let mid = (lo >> 64) + (hi as u64) as u128 + (c >> 64) + (sum_lo >> 64);
            let w1 = mid as u64;
            let w2 = (hi >> 64) + (mid >> 64);
            prop_assert_eq!(acc, [w0, w1, w2 as u64, (w2 >> 64) as u64]);
            mul_small_sub(&mut acc, &[a, b], s);
            prop_assert_eq!(acc, [c as u64, (c >> 64) as u64, 0, 0]);
            let mut neg = acc;
            negate(&mut neg);
            add_assign(&mut neg, &acc);
            prop_assert_eq!(neg, [0; 4]);
            prop_assert!(ge(&acc, &[c as u64]));
            let q = Modulus::new(1_099_511_480_321).unwrap();
            prop_assert_eq!(rem(&acc, &q), (c % q.value() as u128) as u64);
            let f = to_f64(&acc);
            prop_assert!((f - c as f64).abs() <= c as f64 * 1e-15);
        }
    }
}
