//! One step of a real run: pins its operands, computes straight into the result's store block
//! with scratch borrowed from the budget, and puts the result; a bootstrap op as a whole.

use std::time::Instant;

use hetier_tiering::{
    BlockWriter, Durability, ObjectId, ObjectKind, ScratchBuffer, ScratchReserve, TieredStore,
};

use super::bootstrap::{add_store_partner, partner_words};
use super::error::{Error, Result};
use super::heal::{pin_as, program_role};
use super::real::{encode_weight, Real, Views};
use super::steps::Step;
use crate::ckks::bootstrap::{KeySource, RecordingKeys};
use crate::ckks::{Ciphertext, Complex64, HoistedCiphertext, Scratch};
use crate::error::Error as CoreError;
use crate::nn::interp::check_key_uses;
use crate::nn::{ObjId, Op, Program};

/// Pins a step's objects, computes it, releases the pins and puts its results. Returns the
/// compute time and the (object, length) of each result.
pub(super) fn exec_step<'s>(
    real: &mut Real<'s>,
    program: &Program,
    ids: &[ObjectId],
    op: &Op,
    step: &Step,
    weights_on_the_fly: bool,
    buffers: StepBuffers<'_, 's>,
) -> Result<(u64, Vec<(ObjId, u64)>)> {
    let StepBuffers { room, shared } = buffers;
    if step.name == "hoist" {
        // The previous decomposition is dead.
        real.drop_hoisted();
    }
    let Real { store, ctx, eval, encoder, keys, meta, hoisted, .. } = real;
    let store: &'s TieredStore = store;
    let guards = step
        .pins
        .iter()
        .map(|&o| pin_as(store, ids[o.index()], || program_role(program, o)))
        .collect::<Result<Vec<_>>>()?;
    let v = Views { store, ctx, keys, meta, program };
    let g = |k: usize| &guards[k];
    let t = Instant::now();
    // Results are computed straight into their store block: no heap result, no copy, no fresh
    // pages (the block's bytes count against the budget while the operands are pinned), and
    // every temporary the size of a ciphertext is a scratch buffer charged to the budget.
    let block = |level: usize| -> Result<BlockWriter<'s>> {
        Ok(store.alloc_for_overwrite(program.sizes().ciphertext(level))?)
    };
    // Scratch comes out of the run's reservation (nothing evicted, see
    // `Executor::scratch_reservation`), or from the budget when there is none.
    let borrow = |len: u64| -> Result<ScratchBuffer<'s>> {
        Ok(match room {
            Some(r) => r.scratch(len)?,
            None => store.scratch(len)?,
        })
    };
    // Key-switch scratch for operands at `level`, for this step: the run's bootstrap buffers
    // when it holds them (top level, idle between bootstraps), else borrowed for the step.
    let mut shared = shared;
    let mut scratch = |level: usize, decomposition: bool| -> Result<KeySwitchBuffers<'_, 's>> {
        Ok(match shared.take() {
            Some(s) => KeySwitchBuffers::Shared(s),
            None => KeySwitchBuffers::Own(Box::new(Scratch::with_buffers(
                ctx,
                level,
                decomposition,
                |w| borrow(w as u64 * 8),
            )?)),
        })
    };
    let out: Option<(ObjId, Output<'s>)> = match op {
        Op::Rotate { dst, src, step: s, key } => {
            let x = v.ct(*src, g(0))?;
            let out = block(x.level())?;
            let mut scratch = scratch(x.level(), true)?;
            let c = eval.rotate_into(&x, *s, &v.galois(*key, g(1))?, scratch.get(), out)?;
            Some((*dst, Output::written(c)))
        }
        Op::Conjugate { dst, src, key } => {
            let x = v.ct(*src, g(0))?;
            let out = block(x.level())?;
            let mut scratch = scratch(x.level(), true)?;
            let c = eval.conjugate_into(&x, &v.galois(*key, g(1))?, scratch.get(), out)?;
            Some((*dst, Output::written(c)))
        }
        Op::HoistedRotate { src, rots } => {
            if step.name == "hoist" {
                let x = v.ct(*src, g(0))?;
                let (c0, dec) = HoistedCiphertext::<ScratchBuffer<'_>>::words_at(ctx, x.level());
                let (c0, dec) = (borrow(c0 as u64 * 8)?, borrow(dec as u64 * 8)?);
                let mut scratch = scratch(x.level(), false)?;
                *hoisted = Some(eval.hoist_into(&x, scratch.get(), c0, dec)?);
                None
            } else {
                let dst = step.writes[0];
                let &(s, key, _) = rots
                    .iter()
                    .find(|r| r.2 == dst)
                    .ok_or(CoreError::MissingObject { id: dst.0, reason: "hoisted rotation" })?;
                let h = hoisted.as_ref().ok_or(CoreError::MissingObject {
                    id: src.0,
                    reason: "hoisted decomposition",
                })?;
                let out = block(h.level())?;
                let mut scratch = scratch(h.level(), false)?;
                let c =
                    eval.rotate_hoisted_into(h, s, &v.galois(key, g(0))?, scratch.get(), out)?;
                Some((dst, Output::written(c)))
            }
        }
        Op::MulPlain { dst, ct, pt } => {
            let x = v.ct(*ct, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            if weights_on_the_fly {
                eval.mul_plain_assign(&mut c, &encode_weight(encoder, program, *pt)?)?;
            } else {
                eval.mul_plain_assign(&mut c, &v.pt(*pt, g(1))?)?;
            }
            Some((*dst, Output::written(c)))
        }
        Op::AddPlain { dst, ct, pt } => {
            let x = v.ct(*ct, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            if weights_on_the_fly {
                eval.add_plain_assign(&mut c, &encode_weight(encoder, program, *pt)?)?;
            } else {
                eval.add_plain_assign(&mut c, &v.pt(*pt, g(1))?)?;
            }
            Some((*dst, Output::written(c)))
        }
        Op::MulConst { dst, src, value, scale } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.mul_const_assign(&mut c, *value, *scale)?;
            Some((*dst, Output::written(c)))
        }
        Op::MulInt { dst, src, k } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.mul_integer_assign(&mut c, *k)?;
            Some((*dst, Output::written(c)))
        }
        Op::AddConst { dst, src, value } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.add_const_assign(&mut c, Complex64::new(*value, 0.0))?;
            Some((*dst, Output::written(c)))
        }
        Op::Add { dst, a, b } => {
            let x = v.ct(*a, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.add_assign(&mut c, &v.ct(*b, g(1))?)?;
            Some((*dst, Output::written(c)))
        }
        Op::Sub { dst, a, b } => {
            let x = v.ct(*a, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            eval.sub_assign(&mut c, &v.ct(*b, g(1))?)?;
            Some((*dst, Output::written(c)))
        }
        Op::MulRelin { dst, a, b, key } => {
            let (x, y) = (v.ct(*a, g(0))?, v.ct(*b, g(1))?);
            let l = x.level();
            // The degree-2 product and the key-switch buffers are borrowed from the budget.
            let tensor = borrow(3 * program.sizes().plaintext(l))?;
            let mut scratch = scratch(l, true)?;
            let out = block(l)?;
            let rk = v.relin(*key, g(2))?;
            let c = eval.mul_relin_into(&x, &y, &rk, scratch.get(), tensor, out)?;
            Some((*dst, Output::written(c)))
        }
        Op::Rescale { dst, src } => {
            let x = v.ct(*src, g(0))?;
            let out = block(x.level().saturating_sub(1))?;
            // The last limbs in coefficient form, one per part.
            let mut lasts = borrow(2 * program.sizes().n * 8)?;
            Some((*dst, Output::written(eval.rescale_into_with(&x, out, &mut lasts)?)))
        }
        Op::Relabel { dst, src, scale } => {
            let x = v.ct(*src, g(0))?;
            let mut c = eval.copy_into(&x, block(x.level())?)?;
            c.set_scale(*scale);
            Some((*dst, Output::written(c)))
        }
        Op::LevelDrop { dst, src, level } => {
            let x = v.ct(*src, g(0))?;
            Some((*dst, Output::written(eval.drop_to_level_into(&x, *level, block(*level)?)?)))
        }
        Op::Bootstrap { .. } => {
            return Err(Error::WrongMode { mode: "real", what: "run a bootstrap as one step" })
        }
    };
    let ns = t.elapsed().as_nanos() as u64;
    drop(guards);
    if let Op::HoistedRotate { rots, .. } = op {
        if step.writes.first().is_some_and(|w| rots.last().map(|r| r.2) == Some(*w)) {
            // The last rotation of the group: the decomposition is dead before the put.
            *hoisted = None;
        }
    }
    let mut written = Vec::new();
    if let Some((dst, out)) = out {
        let Output { w, level, scale } = out;
        meta.insert(dst, (level, scale));
        let len = w.len();
        store.put_block(ids[dst.index()], ObjectKind::Ciphertext, Durability::Scratch, w)?;
        written.push((dst, len));
    }
    Ok((ns, written))
}

/// Where a step's scratch comes from.
pub(super) struct StepBuffers<'a, 's> {
    /// The run's scratch reservation, if it has one (else the store's budget).
    pub(super) room: Option<&'a ScratchReserve<'s>>,
    /// The run's bootstrap buffers, whose key-switch buffers serve the step's key switch.
    pub(super) shared: Option<&'a mut Scratch<ScratchBuffer<'s>>>,
}

/// The key-switch buffers of one step.
enum KeySwitchBuffers<'a, 's> {
    /// The run's bootstrap buffers, lent for the step.
    Shared(&'a mut Scratch<ScratchBuffer<'s>>),
    /// Borrowed from the budget for the step.
    Own(Box<Scratch<ScratchBuffer<'s>>>),
}

impl<'s> KeySwitchBuffers<'_, 's> {
    fn get(&mut self) -> &mut Scratch<ScratchBuffer<'s>> {
        match self {
            KeySwitchBuffers::Shared(s) => s,
            KeySwitchBuffers::Own(s) => s,
        }
    }
}

/// The buffers every bootstrap op of a run shares, taken from the store's budget once at the
/// run's start (out of the run's reservation `room` when there is one) and held to its end:
/// key-switch buffers at the top level and one spare per ciphertext temporary and transform
/// buffer of a bootstrap, as the program's [`crate::nn::BootstrapSpec::spare_words`] lists them
/// (what `Executor::bootstrap_scratch_lengths` charges the plan for, in that order).
pub(super) fn bootstrap_scratch<'s>(
    real: &Real<'s>,
    spare_words: &[usize],
    room: Option<&ScratchReserve<'s>>,
) -> Result<Scratch<ScratchBuffer<'s>>> {
    let store: &'s TieredStore = real.store;
    let alloc = |w: usize| -> Result<ScratchBuffer<'s>> {
        let len = w as u64 * 8;
        Ok(match room {
            Some(r) => r.scratch(len)?,
            None => store.scratch(len)?,
        })
    };
    let top = real.ctx.params().max_level();
    let mut scratch = Scratch::with_buffers(&real.ctx, top, true, alloc)?;
    let spares = spare_words.iter().map(|&w| alloc(w)).collect::<Result<Vec<_>>>()?;
    scratch.add_spares(spares);
    Ok(scratch)
}

/// Gives the run's bootstrap buffers `scratch` a partner, so that each bootstrap's two EvalMod
/// halves run side by side, when that can pay and fit: on a pool of two threads or more, with
/// keys two threads may borrow at once, and a budget that holds the partner's buffers beside
/// the run's largest working set `need` (the halves pin the same relinearisation key). The
/// partner's buffers come from the store's budget and are released outside EvalMod, so the
/// run's other steps keep their room to prefetch ([`add_store_partner`]); an EvalMod that
/// cannot have them back runs its halves one after the other.
pub(super) fn add_eval_mod_partner<'s>(
    real: &Real<'s>,
    scratch: &mut Scratch<ScratchBuffer<'s>>,
    need: u64,
) -> Result<()> {
    let (Some(bs), Some(keys)) = (real.bootstrapper.as_ref(), real.boot_keys.as_ref()) else {
        return Ok(());
    };
    let halves = !bs.partner_spare_words().is_empty();
    if rayon::current_num_threads() < 2 || !halves || !keys.shared_borrows() {
        return Ok(());
    }
    let bytes = partner_words(bs).into_iter().map(|w| w as u64 * 8);
    if need.saturating_add(TieredStore::working_set_need([bytes]).0) > real.store.budget() {
        return Ok(());
    }
    add_store_partner(real.store, bs, scratch)
}

/// Runs bootstrap op `op` with the run's bootstrap buffers `scratch` ([`bootstrap_scratch`]):
/// pins its input for the whole bootstrap and each key only while the bootstrapper uses it
/// (through the store-backed key source), computes the result straight into its store block
/// and puts it. Returns the compute time of each of the op's [`steps`] (the time up to the
/// first key, then the time from each key's pin to the next) and the written result with its
/// length.
pub(super) fn exec_bootstrap<'s>(
    real: &mut Real<'s>,
    program: &Program,
    ids: &[ObjectId],
    op: &Op,
    scratch: &mut Scratch<ScratchBuffer<'s>>,
) -> Result<(Vec<u64>, (ObjId, u64))> {
    let Op::Bootstrap { dst, src, keys } = op else {
        return Err(Error::WrongMode { mode: "real", what: "bootstrap another op" });
    };
    real.drop_hoisted();
    let bs = real.bootstrapper.clone().ok_or(CoreError::MissingKey { what: "bootstrapper" })?;
    let boot_keys = real.boot_keys.as_ref().ok_or(Error::WrongMode {
        mode: "real",
        what: "bootstrap before the bootstrap keys were prepared",
    })?;
    let store: &'s TieredStore = real.store;
    let guard = pin_as(store, ids[src.index()], || program_role(program, *src))?;
    let v = Views { store, ctx: &real.ctx, keys: &real.keys, meta: &real.meta, program };
    let x = v.ct(*src, &guard)?;
    let recorder = RecordingKeys::new(boot_keys);
    let start = Instant::now();
    // The result's block is taken once the last transform is done (the step that writes it).
    let block = |words: usize| -> Result<BlockWriter<'s>> {
        Ok(store.alloc_for_overwrite(words as u64 * 8)?)
    };
    let (out, _) = bs.bootstrap_into(&x, &recorder, scratch, block)?;
    let end = Instant::now();
    drop(guard);
    let uses = recorder.into_uses();
    check_key_uses(program, keys, &uses)?;
    let mut marks = vec![start];
    marks.extend(uses.iter().map(|&(_, t)| t));
    marks.push(end);
    let times = marks.windows(2).map(|w| (w[1] - w[0]).as_nanos() as u64).collect();
    real.meta.insert(*dst, (out.level(), out.scale()));
    let w = out.into_data();
    let len = w.len();
    store.put_block(ids[dst.index()], ObjectKind::Ciphertext, Durability::Scratch, w)?;
    Ok((times, (*dst, len)))
}

/// A step's result, computed straight into its store block.
pub(super) struct Output<'s> {
    w: BlockWriter<'s>,
    level: usize,
    scale: f64,
}

impl<'s> Output<'s> {
    /// A ciphertext computed in its store block.
    fn written(c: Ciphertext<BlockWriter<'s>>) -> Self {
        let (level, scale) = (c.level(), c.scale());
        Output { w: c.into_data(), level, scale }
    }
}
