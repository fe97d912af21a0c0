//! How a key switch reads a switching key: from its expanded words, or from its seed-compressed
//! blobs in place, each piece of a limb made in cache just before it is multiplied.
//!
//! A key read in place is never expanded: no 140 MiB block to fill and read back per use at
//! log N = 16, and no block in the budget. The price is making the pieces at every switch,
//! which an expanded key pays at every expansion anyway.

use std::cell::RefCell;

use super::context::Context;
use super::sampling::UniformStream;
use super::serialize::PackedKeyLayout;
use crate::error::{Error, Result};
use crate::math::{dot_product, simd};

/// Where a key switch reads a switching key's words from.
#[derive(Debug, Clone)]
pub enum KeyLimbs<'a> {
    /// Every word, in the expanded layout `[digit][b|a][limb over Q·P][N]`.
    Expanded(&'a [u64]),
    /// The key's seed-compressed blobs as a checksummed store pinned them, read in place.
    Packed {
        /// The blobs, in the order [`PackedKeyLayout::parse`] read them.
        blobs: Vec<&'a [u8]>,
        /// Where the digits are in them.
        layout: &'a PackedKeyLayout,
    },
}

/// The words of a switching key, as a key switch reads them. Every `AsRef<[u64]>` container
/// holds expanded words; a container of a seed-compressed key's pinned blobs answers
/// [`KeyLimbs::Packed`].
pub trait SwitchKeyWords: Sync {
    /// Where the key's words are.
    fn key_limbs(&self) -> KeyLimbs<'_>;
}

impl<T: AsRef<[u64]> + Sync + ?Sized> SwitchKeyWords for T {
    fn key_limbs(&self) -> KeyLimbs<'_> {
        KeyLimbs::Expanded(self.as_ref())
    }
}

/// Coefficients per piece of a packed key: the 2·digits pieces in use at once (128 KiB at
/// four digits) stay in L2 while they are multiplied.
const PIECE: usize = 2048;

/// One thread's buffers for making pieces, kept between limbs and switches: the pieces, and
/// one keystream buffer per digit.
#[derive(Default)]
struct Buffers {
    pieces: Vec<u64>,
    keystreams: Vec<Vec<u8>>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

/// `out[0] = Σ_j dec[j] ⊙ b_j` and `out[1] = Σ_j dec[j] ⊙ a_j` over global prime `gi`, for the
/// first `dec.len()` digits (b_j, a_j) of the key `limbs` names (its limbs of `gi`).
pub(crate) fn key_dot_product(
    ctx: &Context,
    limbs: &KeyLimbs<'_>,
    gi: usize,
    dec: &[&[u64]],
    out: [&mut [u64]; 2],
) -> Result<()> {
    let n = ctx.n();
    let digits = dec.len();
    let m = &ctx.prime(gi).modulus;
    let [o0, o1] = out;
    match limbs {
        KeyLimbs::Expanded(words) => {
            let qp = ctx.q_len() + ctx.p_len();
            let key: Vec<&[u64]> = (0..2)
                .flat_map(|p| (0..digits).map(move |j| ((j * 2 + p) * qp + gi) * n))
                .map(|off| &words[off..off + n])
                .collect();
            dot_product(m, dec, &key, None, &mut [o0, o1])
        }
        KeyLimbs::Packed { blobs, layout } => {
            if digits > layout.digit_count() {
                // The caller checked the switch's level against the layout's.
                return Err(Error::LimbMismatch { expected: digits, found: layout.digit_count() });
            }
            let q = ctx.prime(gi).q;
            // Taken out, not borrowed: nothing here runs another piece on this thread, but a
            // panic must not leave the cell borrowed.
            let Buffers { mut pieces, mut keystreams } = BUFFERS.with(RefCell::take);
            keystreams.resize_with(digits.max(keystreams.len()), Vec::new);
            let mut streams: Vec<UniformStream> = keystreams
                .drain(..digits)
                .enumerate()
                .map(|(j, buf)| UniformStream::with_buffer(layout.seed(), j as u64, gi, q, buf))
                .collect();
            pieces.resize(2 * digits * PIECE, 0);
            let mut made = || -> Result<()> {
                for from in (0..n).step_by(PIECE) {
                    let len = PIECE.min(n - from);
                    let next = from + len;
                    if next < n {
                        // The next piece's b bytes come in while this one's keystream is made.
                        for j in 0..digits {
                            let ahead = PIECE.min(n - next);
                            simd::prefetch_l2(layout.b_bytes(ctx, blobs, j, gi, next, ahead)?);
                        }
                    }
                    let (b, a) = pieces.split_at_mut(digits * PIECE);
                    let parts = b.chunks_mut(PIECE).zip(a.chunks_mut(PIECE));
                    for (j, ((bj, aj), stream)) in parts.zip(&mut streams).enumerate() {
                        layout.b_piece(ctx, blobs, j, gi, from, &mut bj[..len])?;
                        stream.fill(&mut aj[..len]);
                    }
                    let key: Vec<&[u64]> = pieces.chunks(PIECE).map(|c| &c[..len]).collect();
                    let dec: Vec<&[u64]> = dec.iter().map(|d| &d[from..from + len]).collect();
                    let out = &mut [&mut o0[from..from + len], &mut o1[from..from + len]];
                    dot_product(m, &dec, &key, None, out)?;
                }
                Ok(())
            };
            let result = made();
            keystreams.extend(streams.into_iter().map(UniformStream::into_buffer));
            BUFFERS.with(|b| b.replace(Buffers { pieces, keystreams }));
            result
        }
    }
}
