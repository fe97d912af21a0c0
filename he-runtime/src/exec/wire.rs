//! Evaluation keys on the wire: the bundle a client sends a server (relinearisation and Galois
//! keys, each seed-compressed), tagged with its key-set id and parameter set. The server puts
//! them in its pool once ([`super::Executor::prepare_keys_from`]); it never sees the secret.

use std::collections::BTreeMap;

use super::error::{Error, Result};
use super::ids::KeySetId;
use crate::ckks::{Context, GaloisKey, KeyGenerator, KeySwitchKey, RelinKey, SecretKey};

const MAGIC: &[u8; 8] = b"HTEKB001";
/// More keys than any program uses (a key per rotation step of a 2^16-slot vector is 2^16).
const MAX_KEYS: usize = 1 << 16;

/// The evaluation keys of one key set, by Galois element (0 = relinearisation).
pub struct EvalKeyBundle {
    /// Which secret key they belong to.
    pub keyset: KeySetId,
    /// The keys.
    pub keys: BTreeMap<u64, KeySwitchKey>,
}

fn corrupt(reason: impl Into<String>) -> Error {
    crate::Error::Corrupt { reason: reason.into() }.into()
}

impl EvalKeyBundle {
    /// Generates the keys for `needed` (Galois elements, 0 = relinearisation) from `sk`.
    pub fn generate(
        kg: &mut KeyGenerator,
        sk: &SecretKey,
        keyset: KeySetId,
        needed: &[u64],
    ) -> Result<Self> {
        let mut keys = BTreeMap::new();
        for &g in needed {
            let k = if g == 0 { kg.relin_key(sk)?.key } else { kg.galois_key(sk, g)?.key };
            keys.insert(g, k);
        }
        Ok(Self { keyset, keys })
    }

    /// Serialises the bundle: magic, parameter id, key-set id, count, then each key's Galois
    /// element, length and seed-compressed bytes.
    pub fn to_bytes(&self, ctx: &Context) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&ctx.params().id().to_le_bytes());
        out.extend_from_slice(&self.keyset.0.to_le_bytes());
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        for (&g, k) in &self.keys {
            let blob = if g == 0 {
                RelinKey { key: k.clone() }.to_bytes(ctx)
            } else {
                GaloisKey { galois_element: g, key: k.clone() }.to_bytes(ctx)
            };
            out.extend_from_slice(&g.to_le_bytes());
            out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
            out.extend_from_slice(&blob);
        }
        out
    }

    /// Parses a bundle for `ctx`'s parameters, checking every count and length first.
    pub fn from_bytes(ctx: &Context, bytes: &[u8]) -> Result<Self> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8]> {
            let end = at.checked_add(n).filter(|&e| e <= bytes.len()).ok_or_else(|| {
                corrupt(format!(
                    "key bundle truncated: {} bytes, needs more than {at}",
                    bytes.len()
                ))
            })?;
            let s = &bytes[at..end];
            at = end;
            Ok(s)
        };
        let u64_at = |s: &[u8]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(s);
            u64::from_le_bytes(b)
        };
        if take(8)? != MAGIC {
            return Err(corrupt("not an evaluation-key bundle (bad magic)"));
        }
        let pid = u64_at(take(8)?);
        if pid != ctx.params().id() {
            let e = crate::Error::ParamsMismatch { expected: ctx.params().id(), found: pid };
            return Err(e.into());
        }
        let keyset = KeySetId(u64_at(take(8)?));
        let count = u64_at(take(8)?);
        if count > MAX_KEYS as u64 {
            return Err(corrupt(format!("key bundle claims {count} keys (at most {MAX_KEYS})")));
        }
        let mut keys = BTreeMap::new();
        for _ in 0..count {
            let g = u64_at(take(8)?);
            let len = usize::try_from(u64_at(take(8)?)).map_err(|_| corrupt("key length"))?;
            let blob = take(len)?;
            let key = if g == 0 {
                RelinKey::from_bytes(ctx, blob)?.key
            } else {
                let k = GaloisKey::from_bytes(ctx, blob)?;
                if k.galois_element != g {
                    return Err(corrupt(format!(
                        "key listed as Galois element {g} holds {}",
                        k.galois_element
                    )));
                }
                k.key
            };
            if keys.insert(g, key).is_some() {
                return Err(corrupt(format!("Galois element {g} appears twice")));
            }
        }
        if at != bytes.len() {
            return Err(corrupt(format!("{} trailing bytes after the keys", bytes.len() - at)));
        }
        Ok(Self { keyset, keys })
    }

    /// Removes and returns the key for Galois element `g` (a key source for
    /// [`super::Executor::prepare_keys_from`]).
    pub fn take(&mut self, g: u64) -> Result<KeySwitchKey> {
        self.keys.remove(&g).ok_or_else(|| Error::KeyManifest {
            reason: format!(
                "the evaluation keys sent for key set {:#x} lack the key for Galois element {g} (made for another model?)",
                self.keyset.0
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ckks::Preset;

    #[test]
    fn bundles_round_trip_and_reject_damage() {
        let ctx = Arc::new(Context::new(&Preset::N13.params().unwrap()).unwrap());
        let mut kg = KeyGenerator::with_seed(&ctx, [5; 32]);
        let sk = kg.secret_key();
        let g = ctx.galois_element_for_step(1);
        let b = EvalKeyBundle::generate(&mut kg, &sk, KeySetId(9), &[0, g]).unwrap();
        let bytes = b.to_bytes(&ctx);
        let mut back = EvalKeyBundle::from_bytes(&ctx, &bytes).unwrap();
        assert_eq!(back.keyset, KeySetId(9));
        assert_eq!(back.take(g).unwrap().as_words(), b.keys[&g].as_words());
        assert!(matches!(back.take(g), Err(Error::KeyManifest { .. })));
        for cut in [0, 7, 20, 40, bytes.len() - 1] {
            assert!(EvalKeyBundle::from_bytes(&ctx, &bytes[..cut]).is_err(), "cut {cut}");
        }
        let mut huge = bytes[..24].to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            EvalKeyBundle::from_bytes(&ctx, &huge),
            Err(Error::Core(crate::Error::Corrupt { .. }))
        ));
        let other = Context::new(&Preset::N14.params().unwrap()).unwrap();
        assert!(matches!(
            EvalKeyBundle::from_bytes(&other, &bytes),
            Err(Error::Core(crate::Error::ParamsMismatch { .. }))
        ));
    }

    /// A valid bundle (relinearisation key and one Galois key at log N = 13), made once.
    fn valid() -> &'static (Arc<Context>, Vec<u8>) {
        static V: std::sync::OnceLock<(Arc<Context>, Vec<u8>)> = std::sync::OnceLock::new();
        V.get_or_init(|| {
            let ctx = Context::new(&Preset::N13.params().unwrap()).unwrap();
            let mut kg = KeyGenerator::with_seed(&ctx, [6; 32]);
            let sk = kg.secret_key();
            let g = ctx.galois_element_for_step(1);
            let b = EvalKeyBundle::generate(&mut kg, &sk, KeySetId(3), &[0, g]).unwrap();
            let bytes = b.to_bytes(&ctx);
            (ctx, bytes)
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 64, ..proptest::prelude::ProptestConfig::default()
        })]

        /// The bundle a client sends is hostile bytes: random bodies behind a valid header,
        /// truncations and bit flips are typed errors, never a panic or a huge allocation. A
        /// flip in the key-set id alone still decodes (that field carries no check; the
        /// server compares it with its own).
        #[test]
        fn bundle_decoder_refuses_bad_bytes(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            bit in proptest::prelude::any::<usize>(),
        ) {
            let (ctx, v) = valid();
            let mut random = v[..16].to_vec();
            random.extend_from_slice(&body);
            proptest::prop_assert!(EvalKeyBundle::from_bytes(ctx, &random).is_err());
            let c = cut.index(v.len());
            proptest::prop_assert!(EvalKeyBundle::from_bytes(ctx, &v[..c]).is_err());
            let mut f = v.clone();
            let byte = (bit / 8) % v.len();
            f[byte] ^= 1 << (bit % 8);
            let r = EvalKeyBundle::from_bytes(ctx, &f);
            if (16..24).contains(&byte) {
                proptest::prop_assert!(r.is_ok());
            } else {
                proptest::prop_assert!(r.is_err(), "flip at byte {byte} decoded");
            }
        }
    }
}
