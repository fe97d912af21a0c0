//! Running a program: inputs put, the plan hinted, each op's steps computed (or, in plan mode,
//! timed from the op costs) and recorded, dead intermediates removed; a failed run cleans up.

use std::borrow::Borrow;

use hetier_tiering::{ObjectId, TieredStore, TraceEvent};

use super::compute::{
    add_eval_mod_partner, bootstrap_scratch, exec_bootstrap, exec_step, StepBuffers,
};
use super::error::{Error, Result};
use super::executor::{Backend, Executor};
use super::real::put_ct;
use super::report::RunReport;
use super::steps::steps;
use crate::ckks::Ciphertext;
use crate::error::Error as CoreError;
use crate::nn::encrypted_weights::is_encrypted_weight;
use crate::nn::{ObjId, Op};

impl Executor<'_> {
    /// Runs the program once. Real mode needs `input` (the encrypted sample at the program's
    /// input level and scale); plan mode ignores it. The output stays in the store until
    /// [`Executor::finish`]. A run that fails removes the ciphertexts it had put, so the
    /// executor (and the store) can run again.
    pub fn run(&mut self, input: Option<&Ciphertext>) -> Result<RunReport> {
        let in_obj = self.single_input()?;
        self.run_guarded(&mut [(in_obj, input)])
    }

    /// [`Executor::run`] (real mode) with the input in any buffer, e.g. a client's ciphertext
    /// encrypted into a scratch buffer of the store's budget.
    pub fn run_from<C: AsRef<[u64]>>(&mut self, input: &Ciphertext<C>) -> Result<RunReport> {
        let in_obj = self.single_input()?;
        self.run_guarded(&mut [(in_obj, Some(input))])
    }

    /// Runs a program with any number of inputs, each looked up by name in `inputs` (real
    /// mode needs all of them; plan mode ignores them). Outputs stay in the store until
    /// [`Executor::finish`]; a failed run removes what it had put, as [`Executor::run`] does.
    pub fn run_named(&mut self, inputs: &[(String, Ciphertext)]) -> Result<RunReport> {
        let mut named: Vec<(ObjId, Option<&Ciphertext>)> = self
            .program
            .inputs()
            .iter()
            .map(|(name, obj)| (*obj, inputs.iter().find(|(n, _)| n == name).map(|(_, c)| c)))
            .collect();
        self.run_guarded(&mut named)
    }

    /// [`Executor::run_from`] that takes the input and drops it as soon as it is put, before
    /// the plan is hinted: a client's ciphertext in a scratch buffer of the store's budget then
    /// gives its bytes back for the run instead of holding them, unseen by the plan, to the end.
    pub fn run_owned<C: AsRef<[u64]>>(&mut self, input: Ciphertext<C>) -> Result<RunReport> {
        let in_obj = self.single_input()?;
        self.run_guarded(&mut [(in_obj, Some(input))])
    }

    /// The program's one input, or a typed error for a program with none or several.
    fn single_input(&self) -> Result<ObjId> {
        match self.program.inputs() {
            &[(_, in_obj)] => Ok(in_obj),
            _ => Err(CoreError::InvalidParameter {
                name: "program",
                reason: "needs exactly one input".into(),
            }
            .into()),
        }
    }

    fn run_guarded<C: AsRef<[u64]>, B: Borrow<Ciphertext<C>>>(
        &mut self,
        inputs: &mut [(ObjId, Option<B>)],
    ) -> Result<RunReport> {
        let result = self.run_program(inputs);
        if result.is_err() {
            self.discard_live();
        }
        result
    }

    /// Removes every ciphertext a failed run left in the store, recording the removals so the
    /// trace stays balanced.
    fn discard_live(&mut self) {
        let Backend::Real(real) = &mut self.backend else { return };
        real.drop_hoisted();
        let objects = self.program.objects();
        // Encrypted weights are durable setup objects: they stay (and keep their metadata).
        let mut live: Vec<ObjId> = real
            .meta
            .keys()
            .copied()
            .filter(|o| !is_encrypted_weight(&objects[o.index()]))
            .collect();
        live.sort_by_key(|o| o.index());
        for obj in &live {
            real.meta.remove(obj);
        }
        for obj in live {
            let id = self.ids[obj.index()];
            // Best effort: the object that failed to be put is not in the store at all.
            if real.store.remove(id).is_ok() {
                self.events.push(TraceEvent::Remove { id });
            }
        }
    }

    fn run_program<C: AsRef<[u64]>, B: Borrow<Ciphertext<C>>>(
        &mut self,
        inputs: &mut [(ObjId, Option<B>)],
    ) -> Result<RunReport> {
        let program = self.program;
        // A budget that some step can never fit fails here, before anything is put.
        let need = match &self.backend {
            Backend::Real(real) => real.store.check_working_sets(self.working_sets())?,
            Backend::Plan(_) => 0,
        };
        // The largest step's scratch is reserved once for the whole run, before the plan is
        // hinted: the policy then plans and prefetches around it, and no step's scratch evicts
        // an object prefetched for the next step.
        let (room, reserved) = match &self.backend {
            Backend::Real(real) => {
                let store: &TieredStore = real.store;
                match self.scratch_reservation(store.budget()) {
                    0 => (None, 0),
                    bytes => (Some(store.reserve_scratch(bytes)?), bytes),
                }
            }
            Backend::Plan(_) => (None, 0),
        };
        // The buffers every bootstrap op shares, taken once for the whole run (out of the
        // reservation, which counts them) before any input is put: held to the run's end.
        let mut boot = match (&self.backend, program.bootstrap()) {
            (Backend::Real(real), Some(spec)) if program.bootstraps() > 0 => {
                let mut scratch = bootstrap_scratch(real, &spec.spare_words, room.as_ref())?;
                // The reservation's room for the other ops' scratch stays held through every
                // bootstrap, beside the plan's largest working set.
                let held = reserved.saturating_sub(self.boot_scratch_charge());
                add_eval_mod_partner(real, &mut scratch, need.saturating_add(held))?;
                Some(scratch)
            }
            _ => None,
        };
        // The input ciphertexts.
        for (in_obj, input) in inputs.iter_mut() {
            let in_obj = *in_obj;
            // Taken: an owned input is dropped once put (see `run_owned`).
            let input = input.take();
            let in_len = match &mut self.backend {
                Backend::Plan(_) => program.objects()[in_obj.index()].bytes,
                Backend::Real(real) => {
                    let ct = input
                        .ok_or(Error::WrongMode { mode: "real", what: "run without an input" })?;
                    let ct = ct.borrow();
                    real.meta.insert(in_obj, (ct.level(), ct.scale()));
                    put_ct(real, self.ids[in_obj.index()], ct)?
                }
            };
            self.put_event(in_obj, in_len);
        }
        if let Backend::Real(real) = &self.backend {
            real.store.hint(&self.pin_sequence());
        }
        let mut report = RunReport::default();
        self.layer_ns.iter_mut().for_each(|t| *t = 0);
        for (i, rec) in program.ops().iter().enumerate() {
            if let (Op::Bootstrap { .. }, Backend::Real(real), Some(scratch)) =
                (&rec.op, &mut self.backend, boot.as_mut())
            {
                let (times, written) = exec_bootstrap(real, program, &self.ids, &rec.op, scratch)?;
                for (step, ns) in steps(&rec.op).into_iter().zip(times) {
                    let pins = step.pins.iter().map(|o| self.ids[o.index()]).collect();
                    report.steps += 1;
                    report.compute_ns += ns;
                    report.bootstrap_ns += ns;
                    self.events.push(TraceEvent::Op {
                        name: step.name.to_owned(),
                        pins,
                        compute_ns: ns,
                    });
                }
                let (w, len) = written;
                self.put_event(w, len);
                self.free_dead(i)?;
                continue;
            }
            for step in self.op_steps(&rec.op) {
                let pins: Vec<ObjectId> = step.pins.iter().map(|o| self.ids[o.index()]).collect();
                let (ns, written) = match &mut self.backend {
                    Backend::Plan(costs) => {
                        let mut ns = costs.estimate(step.name, rec.level);
                        if self.weights_on_the_fly
                            && matches!(rec.op, Op::MulPlain { .. } | Op::AddPlain { .. })
                        {
                            ns += costs.estimate("encode", rec.level);
                        }
                        let lens = step
                            .writes
                            .iter()
                            .map(|w| (*w, program.objects()[w.index()].bytes))
                            .collect();
                        (ns, lens)
                    }
                    Backend::Real(real) => {
                        let fly = self.weights_on_the_fly;
                        // The bootstrap's key-switch buffers serve the run's other ops too.
                        let buffers = StepBuffers { room: room.as_ref(), shared: boot.as_mut() };
                        exec_step(real, program, &self.ids, &rec.op, &step, fly, buffers)?
                    }
                };
                report.steps += 1;
                report.compute_ns += ns;
                if let Some(t) = self.layer_ns.get_mut(rec.layer as usize) {
                    *t += ns;
                }
                self.events.push(TraceEvent::Op {
                    name: step.name.to_owned(),
                    pins,
                    compute_ns: ns,
                });
                for (w, len) in written {
                    self.put_event(w, len);
                }
            }
            self.free_dead(i)?;
        }
        if let Backend::Real(real) = &mut self.backend {
            real.drop_hoisted();
        }
        report.eval_mods_side_by_side = boot.map_or(0, |b| b.partner_runs());
        Ok(report)
    }

    /// Removes the scratch objects that die after op `i`.
    fn free_dead(&mut self, i: usize) -> Result<()> {
        for &dead in self.program.frees_after(i) {
            let id = self.ids[dead.index()];
            if let Backend::Real(real) = &mut self.backend {
                real.store.remove(id)?;
                real.meta.remove(&dead);
            }
            self.events.push(TraceEvent::Remove { id });
        }
        Ok(())
    }
}
