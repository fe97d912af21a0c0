//! Access traces: the versioned JSON-lines format of `docs/trace-format.md`, a recorder that
//! writes it and a reader that validates it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::ObjectId;

/// Value of the header's `format` field.
pub const TRACE_FORMAT: &str = "hetier-trace";
/// The trace format version this build writes and reads.
pub const TRACE_VERSION: u32 = 1;

/// Coarse object class carried by a trace (the allocator's kind without its parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectClass {
    /// An encrypted value.
    Ciphertext,
    /// An evaluation (relinearisation / rotation) key.
    EvalKey,
    /// An encoded plaintext (e.g. model weights).
    Plaintext,
    /// Anything else.
    Blob,
}

/// Durability class as recorded in a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceDurability {
    /// Flushed to PM before `put` returns; survives restart.
    Durable,
    /// Never flushed; written to PM only when it must leave DRAM.
    Scratch,
}

/// First line of a trace file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Always [`TRACE_FORMAT`].
    pub format: String,
    /// Format version, [`TRACE_VERSION`] for files this build writes.
    pub version: u32,
    /// Unit of every `*_ns` field; always `"ns"` in version 1.
    pub clock: String,
    /// Free-form description of what produced the trace (model, parameters, tool).
    #[serde(default)]
    pub source: String,
}

impl TraceHeader {
    /// A version-1 header with the given description.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            format: TRACE_FORMAT.to_owned(),
            version: TRACE_VERSION,
            clock: "ns".to_owned(),
            source: source.into(),
        }
    }
}

/// One event of a trace (every line after the header).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A new object of `len` bytes is written to the store.
    Put {
        /// Object id, unique among live objects.
        #[serde(with = "crate::ids::serde_id")]
        id: ObjectId,
        /// Object class.
        kind: ObjectClass,
        /// Durability class.
        durability: TraceDurability,
        /// Length in bytes.
        len: u64,
    },
    /// An operation pins `pins` (all at once), computes for `compute_ns`, then unpins them.
    Op {
        /// Operation name (a key into the cost model's per-op table).
        name: String,
        /// Objects that must be DRAM-resident during the operation, in pin order.
        #[serde(with = "crate::ids::serde_ids")]
        pins: Vec<ObjectId>,
        /// Compute time of the operation on the machine that recorded it.
        compute_ns: u64,
    },
    /// An object is removed from the store.
    Remove {
        /// Object id.
        #[serde(with = "crate::ids::serde_id")]
        id: ObjectId,
    },
}

/// A whole trace in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The header.
    pub header: TraceHeader,
    /// The events in order.
    pub events: Vec<TraceEvent>,
}

impl Trace {
    /// Reads and validates a whole trace file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let reader = TraceReader::open(path)?;
        let header = reader.header().clone();
        let events = reader.collect::<Result<Vec<_>>>()?;
        Ok(Self { header, events })
    }

    /// Writes the trace to `path` (overwriting it).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut rec = TraceRecorder::create(path, self.header.clone())?;
        for e in &self.events {
            rec.record(e)?;
        }
        rec.finish()
    }

    /// The pin sequence: every pinned id in order, which is what `hint` takes.
    pub fn pin_sequence(&self) -> Vec<ObjectId> {
        self.events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Op { pins, .. } => Some(pins.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Length of every object ever put, keyed by id (the last put wins if an id is reused).
    pub fn object_lens(&self) -> HashMap<ObjectId, u64> {
        let mut m = HashMap::new();
        for e in &self.events {
            if let TraceEvent::Put { id, len, .. } = e {
                m.insert(*id, *len);
            }
        }
        m
    }

    /// Peak bytes of live objects (the footprint a DRAM-only run needs).
    pub fn footprint(&self) -> u64 {
        let mut live: HashMap<ObjectId, u64> = HashMap::new();
        let (mut cur, mut peak) = (0u64, 0u64);
        for e in &self.events {
            match e {
                TraceEvent::Put { id, len, .. } => {
                    cur += len;
                    cur -= live.insert(*id, *len).unwrap_or(0);
                    peak = peak.max(cur);
                }
                TraceEvent::Remove { id } => cur -= live.remove(id).unwrap_or(0),
                TraceEvent::Op { .. } => {}
            }
        }
        peak
    }

    /// What each step of the trace holds in DRAM at once, as lengths for
    /// `TieredStore::check_working_sets`: an op its pinned objects, a put the object being
    /// written (nothing else need stay: unpinned objects can leave). The largest step is the
    /// smallest budget the trace can run in.
    pub fn working_sets(&self) -> Vec<Vec<u64>> {
        let mut live: HashMap<ObjectId, u64> = HashMap::new();
        let mut sets = Vec::new();
        for e in &self.events {
            match e {
                TraceEvent::Put { id, len, .. } => {
                    live.insert(*id, *len);
                    sets.push(vec![*len]);
                }
                TraceEvent::Remove { id } => {
                    live.remove(id);
                }
                TraceEvent::Op { pins, .. } => {
                    let mut seen = std::collections::HashSet::new();
                    sets.push(
                        pins.iter()
                            .filter(|id| seen.insert(**id))
                            .filter_map(|id| live.get(id).copied())
                            .collect(),
                    );
                }
            }
        }
        sets
    }

    /// Sum of every op's recorded compute time.
    pub fn compute_ns(&self) -> u64 {
        self.events
            .iter()
            .map(|e| match e {
                TraceEvent::Op { compute_ns, .. } => *compute_ns,
                _ => 0,
            })
            .sum()
    }

    /// Checks that every pin and remove names a live object and every put a fresh id.
    pub fn validate(&self) -> Result<()> {
        let mut live: HashMap<ObjectId, u64> = HashMap::new();
        for (i, e) in self.events.iter().enumerate() {
            let line = i as u64 + 2;
            let bad = |reason: String| Error::TraceFormat { line, reason };
            match e {
                TraceEvent::Put { id, len, .. } => {
                    if live.insert(*id, *len).is_some() {
                        return Err(bad(format!("put of live object {id}")));
                    }
                }
                TraceEvent::Remove { id } => {
                    if live.remove(id).is_none() {
                        return Err(bad(format!("remove of unknown object {id}")));
                    }
                }
                TraceEvent::Op { pins, .. } => {
                    if let Some(id) = pins.iter().find(|id| !live.contains_key(id)) {
                        return Err(bad(format!("pin of unknown object {id}")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Writes a trace file line by line as events happen.
pub struct TraceRecorder {
    path: PathBuf,
    out: BufWriter<File>,
    events: u64,
}

impl TraceRecorder {
    /// Creates (truncates) `path` and writes the header line.
    pub fn create(path: impl AsRef<Path>, header: TraceHeader) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut rec = Self { path, out: BufWriter::new(file), events: 0 };
        rec.write_line(&header, "trace header")?;
        Ok(rec)
    }

    fn write_line<T: Serialize>(&mut self, v: &T, what: &'static str) -> Result<()> {
        serde_json::to_writer(&mut self.out, v).map_err(|cause| Error::Json { what, cause })?;
        self.out.write_all(b"\n").map_err(|e| Error::io(&self.path, e))
    }

    /// Appends one event.
    pub fn record(&mut self, event: &TraceEvent) -> Result<()> {
        self.events += 1;
        self.write_line(event, "trace event")
    }

    /// Appends a `put` event.
    pub fn put(
        &mut self,
        id: ObjectId,
        kind: ObjectClass,
        durability: TraceDurability,
        len: u64,
    ) -> Result<()> {
        self.record(&TraceEvent::Put { id, kind, durability, len })
    }

    /// Appends an `op` event.
    pub fn op(&mut self, name: &str, pins: &[ObjectId], compute_ns: u64) -> Result<()> {
        self.record(&TraceEvent::Op { name: name.to_owned(), pins: pins.to_vec(), compute_ns })
    }

    /// Appends a `remove` event.
    pub fn remove(&mut self, id: ObjectId) -> Result<()> {
        self.record(&TraceEvent::Remove { id })
    }

    /// Number of events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))?;
        self.out.get_ref().sync_all().map_err(|e| Error::io(&self.path, e))
    }
}

/// Streams a trace file: the header is checked on open, events are parsed lazily.
pub struct TraceReader {
    header: TraceHeader,
    lines: std::io::Lines<BufReader<File>>,
    path: PathBuf,
    line: u64,
}

impl TraceReader {
    /// Opens `path` and validates its header (format name, version, clock unit).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut lines = BufReader::new(file).lines();
        let first = match lines.next() {
            Some(l) => l.map_err(|e| Error::io(&path, e))?,
            None => return Err(Error::TraceFormat { line: 1, reason: "empty file".into() }),
        };
        let header: TraceHeader = serde_json::from_str(&first)
            .map_err(|e| Error::TraceFormat { line: 1, reason: format!("bad header: {e}") })?;
        if header.format != TRACE_FORMAT {
            return Err(Error::TraceFormat {
                line: 1,
                reason: format!("format is {:?}, expected {TRACE_FORMAT:?}", header.format),
            });
        }
        if header.version != TRACE_VERSION {
            return Err(Error::TraceVersion { found: header.version, supported: TRACE_VERSION });
        }
        if header.clock != "ns" {
            return Err(Error::TraceFormat {
                line: 1,
                reason: format!("clock unit {:?}, expected \"ns\"", header.clock),
            });
        }
        Ok(Self { header, lines, path, line: 1 })
    }

    /// The validated header.
    pub fn header(&self) -> &TraceHeader {
        &self.header
    }
}

impl Iterator for TraceReader {
    type Item = Result<TraceEvent>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let l = self.lines.next()?;
            self.line += 1;
            let l = match l {
                Ok(l) => l,
                Err(e) => return Some(Err(Error::io(&self.path, e))),
            };
            if l.trim().is_empty() {
                continue;
            }
            return Some(
                serde_json::from_str(&l)
                    .map_err(|e| Error::TraceFormat { line: self.line, reason: e.to_string() }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Trace {
        Trace {
            header: TraceHeader::new("unit test"),
            events: vec![
                TraceEvent::Put {
                    id: ObjectId(1),
                    kind: ObjectClass::EvalKey,
                    durability: TraceDurability::Durable,
                    len: 100,
                },
                TraceEvent::Put {
                    id: ObjectId(2),
                    kind: ObjectClass::Ciphertext,
                    durability: TraceDurability::Scratch,
                    len: 40,
                },
                TraceEvent::Op {
                    name: "key_switch".into(),
                    pins: vec![ObjectId(2), ObjectId(1)],
                    compute_ns: 5,
                },
                TraceEvent::Remove { id: ObjectId(2) },
                TraceEvent::Put {
                    id: ObjectId(3),
                    kind: ObjectClass::Blob,
                    durability: TraceDurability::Scratch,
                    len: 7,
                },
            ],
        }
    }

    #[test]
    fn round_trip_and_summaries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        let t = sample();
        t.save(&p).unwrap();
        let back = Trace::load(&p).unwrap();
        assert_eq!(back, t);
        back.validate().unwrap();
        assert_eq!(back.pin_sequence(), vec![ObjectId(2), ObjectId(1)]);
        assert_eq!(back.footprint(), 140);
        assert_eq!(back.compute_ns(), 5);
        let text = std::fs::read_to_string(&p).unwrap();
        let line3 = text.lines().nth(3).unwrap();
        assert_eq!(line3, r#"{"ev":"op","name":"key_switch","pins":[2,1],"compute_ns":5}"#);
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.jsonl");
        std::fs::write(&p, "{\"format\":\"hetier-trace\",\"version\":9,\"clock\":\"ns\"}\n")
            .unwrap();
        assert!(matches!(
            TraceReader::open(&p),
            Err(Error::TraceVersion { found: 9, supported: 1 })
        ));
        std::fs::write(&p, "{\"format\":\"other\",\"version\":1,\"clock\":\"ns\"}\n").unwrap();
        assert!(matches!(TraceReader::open(&p), Err(Error::TraceFormat { line: 1, .. })));
        std::fs::write(
            &p,
            "{\"format\":\"hetier-trace\",\"version\":1,\"clock\":\"ns\"}\n{\"ev\":\"nope\"}\n",
        )
        .unwrap();
        assert!(matches!(Trace::load(&p), Err(Error::TraceFormat { line: 2, .. })));
        let mut t = sample();
        t.events.push(TraceEvent::Remove { id: ObjectId(2) });
        assert!(matches!(t.validate(), Err(Error::TraceFormat { line: 7, .. })));
    }
}
