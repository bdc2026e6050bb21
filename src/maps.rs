//! The hash maps and sets of the pipeline (loading, compiling, planning, walking): the
//! standard ones and indexmap's, hashed with foldhash instead of SipHash.
//!
//! Their keys are short strings and small tuples (names of types, nodes, properties; instance
//! ids), hashed tens of thousands of times per deploy: SipHash was 4.5 M of the 79 M
//! instructions of deploying a 1,000-instance chain, most of them on the thread that compiles
//! the blueprint, which every later step waits for. foldhash is seeded at random per process
//! like SipHash, and is already built for serde_json. Nothing here is persisted or compared
//! across processes, so a hash that differs per version or platform changes nothing.
//!
//! Use `IndexMap::default()` (or `collect`) where `IndexMap::new()` would be written, and
//! import [`HashMapExt`] / [`HashSetExt`] for `HashMap::new()` / `HashSet::new()`.

pub use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

/// The hasher of every map here.
pub type Hasher = foldhash::fast::RandomState;

/// An insertion-ordered map (declaration order matters for messages and output).
pub type IndexMap<K, V> = indexmap::IndexMap<K, V, Hasher>;
