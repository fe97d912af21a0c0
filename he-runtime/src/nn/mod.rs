//! Encrypted neural-network layers compiled into an HE op [`Program`] — a straight-line list of
//! CKKS operations over named objects — so the same layer code drives an in-memory interpreter,
//! a store-backed executor and a symbolic plan mode.

pub mod builder;
pub mod interp;
pub mod layers;
pub mod layout;
pub mod model;
pub mod poly;
pub mod program;

pub use builder::ProgramBuilder;
pub use interp::{Interpreter, KeyBundle, PlainInterpreter};
pub use layout::Layout;
pub use model::{Layer, Model};
pub use program::{
    Access, AccessMode, CostClass, ObjId, ObjKind, Object, Op, PlainSource, Program, Role,
};
