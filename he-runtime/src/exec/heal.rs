//! Damaged pool objects: a pin whose bytes fail their checksum becomes
//! [`Error::Damaged`], naming the object by what it is to the run (not by its store id) and
//! saying whether it can be derived again. Evaluation keys (from the client's secret key) and
//! encoded weights (from the model) can; a client's ciphertext cannot.

use hetier_tiering::{ObjectId, PinGuard, TieredStore};

use super::error::{Error, Result};
use crate::nn::{ObjId, ObjKind, Program, Role as ObjRole};

/// What to do about a damaged object that can be derived again.
pub const REMEDY_DERIVABLE: &str = "it can be regenerated: a session holding the client's key \
    regenerates it and runs again (as `hetier run` does), or `hetier inspect --repair` drops it \
    so that the next run rebuilds it";
/// What to do about a damaged object that cannot be derived again.
pub const REMEDY_CIPHERTEXT: &str = "a ciphertext cannot be rebuilt without its owner's data: \
    encrypt the input again and resubmit the request";

/// What an object is to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRole {
    /// A description for people, e.g. "the Galois key for rotation step 3".
    pub what: String,
    /// Whether it can be derived again (keys from the secret key, weights from the model).
    pub derivable: bool,
}

impl ObjectRole {
    /// The relinearisation key's role.
    pub fn relin_key() -> Self {
        Self { what: "the relinearisation key".into(), derivable: true }
    }

    /// A ciphertext's role (never derivable).
    pub fn ciphertext(what: String) -> Self {
        Self { what, derivable: false }
    }
}

/// The role of program object `obj`.
pub fn program_role(program: &Program, obj: ObjId) -> ObjectRole {
    let Some(o) = program.objects().get(obj.index()) else {
        return ObjectRole::ciphertext(format!("unknown program object {}", obj.0));
    };
    let layer = program.layers().get(usize::from(o.layer)).map_or("?", String::as_str);
    match o.kind {
        ObjKind::RelinKey => ObjectRole::relin_key(),
        ObjKind::SwitchingKey { .. } => {
            ObjectRole { what: "a bootstrap's encapsulation switching key".into(), derivable: true }
        }
        ObjKind::GaloisKey { step: Some(s), .. } => {
            ObjectRole { what: format!("the Galois key for rotation step {s}"), derivable: true }
        }
        ObjKind::GaloisKey { step: None, .. } => {
            ObjectRole { what: "the conjugation key".into(), derivable: true }
        }
        ObjKind::Plaintext => ObjectRole {
            what: format!("the encoded weight plaintext {} of layer `{layer}`", obj.0),
            derivable: true,
        },
        ObjKind::Ciphertext => ObjectRole::ciphertext(match o.role {
            ObjRole::Input => "the input ciphertext".into(),
            ObjRole::Output => format!("the output ciphertext of layer `{layer}`"),
            _ => format!("intermediate ciphertext {} of layer `{layer}`", obj.0),
        }),
    }
}

/// Pins `id`; a damaged copy in the pool becomes [`Error::Damaged`] described by `role`.
pub(crate) fn pin_as<'s>(
    store: &'s TieredStore,
    id: ObjectId,
    role: impl FnOnce() -> ObjectRole,
) -> Result<PinGuard<'s>> {
    store.pin(id).map_err(|e| match e {
        hetier_tiering::Error::Damaged { id, stored, computed } => {
            let r = role();
            Error::Damaged {
                remedy: if r.derivable { REMEDY_DERIVABLE } else { REMEDY_CIPHERTEXT },
                what: r.what,
                derivable: r.derivable,
                id: id.0,
                stored,
                computed,
            }
        }
        e => e.into(),
    })
}

/// The store id of a damaged object that can be derived again, if `result` failed with one.
pub fn derivable_damage<T>(result: &Result<T>) -> Option<(ObjectId, String)> {
    match result {
        Err(Error::Damaged { derivable: true, id, what, .. }) => {
            Some((ObjectId(*id), what.clone()))
        }
        _ => None,
    }
}

/// The line a heal reports: what was damaged and what was done.
pub fn healed_line(what: &str, source: &str) -> String {
    format!("healed: {what} was damaged in the pool; regenerated from {source} and replaced")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::path::{Path, PathBuf};

    use hetier_tiering::{Durability, ObjectKind, PolicyConfig, Pool, PoolOptions};

    use super::*;
    use crate::ckks::Preset;
    use crate::model::Model;

    fn open(dir: &Path) -> TieredStore {
        TieredStore::builder()
            .dram_budget(1 << 20)
            .pool(Pool::open(dir, PoolOptions::default()).unwrap().0)
            .policy(PolicyConfig::Lru)
            .build()
            .unwrap()
    }

    #[test]
    fn a_damaged_ciphertext_is_named_by_its_role_and_not_derivable() {
        let m =
            Model::load(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/digits.json"))
                .unwrap();
        let c = m.compile(&Preset::N14.params().unwrap()).unwrap();
        let program = &c.program;
        let input = program.inputs()[0].1;
        assert_eq!(program_role(program, input).what, "the input ciphertext");
        let key = program.keys()[0];
        assert!(program_role(program, key).derivable);
        assert!(program_role(program, key).what.contains(" key"));

        let dir = tempfile::tempdir().unwrap();
        let id = ObjectId(77);
        let pool = Pool::create(dir.path(), PoolOptions::default()).unwrap();
        pool.put(id, ObjectKind::Ciphertext, Durability::Durable, &[5u8; 8192]).unwrap();
        let (seg, at) = (pool.superblock().segment_size, pool.meta(id).unwrap().offset.0 + 100);
        drop(pool);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(format!("segment-{:06}.hpool", at / seg)))
            .unwrap();
        f.write_all_at(&[4], at % seg).unwrap();
        drop(f);
        let store = open(dir.path());
        let err = pin_as(&store, id, || program_role(program, input)).err().unwrap();
        let text = err.to_string();
        assert!(matches!(err, Error::Damaged { derivable: false, .. }), "{err:?}");
        assert!(text.starts_with("the input ciphertext is damaged in the pool"), "{text}");
        assert!(text.contains("encrypt the input again"), "{text}");
        assert_eq!(derivable_damage::<()>(&Err(err)), None);
    }

    #[test]
    fn a_damaged_pin_names_the_role_once_and_says_what_to_do() {
        let e = Error::Damaged {
            what: "the Galois key for rotation step 3".into(),
            derivable: true,
            id: 0x1234,
            stored: 1,
            computed: 2,
            remedy: REMEDY_DERIVABLE,
        };
        let text = e.to_string();
        assert!(text.starts_with("the Galois key for rotation step 3 is damaged"), "{text}");
        assert!(text.contains("regenerated"));
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(derivable_damage::<()>(&Err(e)).map(|d| d.0), Some(ObjectId(0x1234)));
    }

    #[test]
    fn a_store_error_is_said_once_down_the_chain() {
        let e = Error::from(hetier_allocator_error());
        let mut text = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(s) = cur {
            text = format!("{text}: {s}");
            cur = s.source();
        }
        assert_eq!(text.matches("is empty").count(), 1, "{text}");
    }

    /// An allocator error, reached through the tiering crate (no direct dependency here).
    fn hetier_allocator_error() -> hetier_tiering::Error {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::create(dir.path(), PoolOptions::default()).unwrap();
        let e = pool.put(ObjectId(1), ObjectKind::Blob, Durability::Durable, &[]).unwrap_err();
        hetier_tiering::Error::Allocator(e)
    }
}
