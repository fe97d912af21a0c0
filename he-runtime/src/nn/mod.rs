//! Encrypted neural-network layers compiled into an HE op [`Program`] — a straight-line list of
//! CKKS operations over named objects — so the same layer code drives an in-memory interpreter,
//! a store-backed executor and a symbolic plan mode.
//!
//! # The IR
//! * **Objects** ([`Object`], id [`ObjId`]): ciphertexts (client [`Role::Input`]s, scratch
//!   [`Role::Intermediate`]s, [`Role::Output`]s), encoded weight plaintexts ([`Role::Weight`],
//!   values produced on demand by a [`PlainSource`], encoded at the level and scale recorded
//!   on the object) and evaluation keys ([`Role::Key`]: one object per Galois element, plus the
//!   relinearisation key). Each records its level and its size in bytes, computed from the
//!   parameters alone ([`program::SizeModel`]): a ciphertext is 2·(ℓ+1)·N·8 B, a plaintext
//!   (ℓ+1)·N·8 B, a key dnum·2·(L+1+K)·N·8 B.
//! * **Ops** ([`Op`]): rotate, hoisted rotations (one decomposition, several keys),
//!   conjugate, plaintext / constant / integer products, plaintext / constant additions, add,
//!   sub, multiply-and-relinearise, rescale, level drop and a scale relabelling. Every op writes
//!   fresh objects (objects are immutable), lists its reads and writes in execution order
//!   ([`Op::accesses`]), and has a [`CostClass`], a key-switch count and the level it runs at
//!   ([`program::OpRecord`]) plus the layer that emitted it.
//! * **The program** records ops in order, objects, inputs/outputs by name, the rotation keys
//!   ([`Program::rotation_steps`]), the depth consumed ([`Program::depth`]) and liveness:
//!   [`Program::frees_after`] lists the scratch ciphertexts dead after each op.
//!
//! # Running a program
//! An executor creates (or finds) every key and weight object once, takes the inputs, then
//! for op i: pins the objects of `ops[i].op.accesses()` in order (reads), computes, puts the
//! written objects, unpins, and drops `frees_after(i)`. [`Program::trace`] is exactly that
//! sequence — [`Access`] { op, obj, mode: Read / Write / Free, bytes } — computed without any
//! cryptography; [`Interpreter`] records the accesses it really performs and the tests check
//! both are equal. [`PlainInterpreter`] runs the same ops on f64 slot vectors (the twin).
//!
//! # Layers
//! [`layers`] compile dense (BSGS diagonal method), conv2d (channel packing), pooling,
//! residual adds, folded batch norm and polynomial activations into a [`ProgramBuilder`];
//! [`Model`] sequences them with level bookkeeping. Data layouts are in [`layout`].

pub mod builder;
pub mod encrypted_weights;
pub mod interp;
pub mod layers;
pub mod layout;
pub mod model;
pub mod poly;
pub mod program;

pub use builder::ProgramBuilder;
pub use encrypted_weights::encrypt_weights;
pub use interp::{Interpreter, KeyBundle, PlainInterpreter};
pub use layout::{Layout, Tensor};
pub use model::{Layer, Model};
pub use program::{
    key_use_tag, switching_key_tag, Access, AccessMode, BootstrapSpec, CostClass, ObjId, ObjKind,
    Object, Op, PlainSource, Program, Role, FROM_SPARSE_TAG, TO_SPARSE_TAG,
};
