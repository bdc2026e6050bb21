//! Instance ids in Cloudify's form: `<name>_<6 chars of [a-z0-9]>`, unique within a deployment.

use crate::maps::{HashSet, HashSetExt};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The id of a node instance (or scaling-group instance).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InstanceId(pub String);

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes fresh ids; remembers every id it made or was told about, so none repeats.
#[derive(Debug, Clone)]
pub struct IdMaker {
    state: u64,
    used: HashSet<String>,
}

const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

impl IdMaker {
    /// Seeded from the clock and process id; use [`IdMaker::seeded`] for reproducible ids.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        IdMaker::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub fn seeded(seed: u64) -> Self {
        IdMaker {
            state: seed,
            used: HashSet::new(),
        }
    }

    /// Record ids that already exist (from a stored deployment).
    pub fn reserve(&mut self, id: &str) {
        self.used.insert(id.to_string());
    }

    pub fn make(&mut self, name: &str) -> InstanceId {
        loop {
            let mut r = self.next();
            let mut id = String::with_capacity(name.len() + 7);
            id.push_str(name);
            id.push('_');
            for _ in 0..6 {
                id.push(ALPHABET[(r % 36) as usize] as char);
                r /= 36;
            }
            if self.used.insert(id.clone()) {
                return InstanceId(id);
            }
        }
    }

    /// SplitMix64: fast, well distributed, no dependency.
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Default for IdMaker {
    fn default() -> Self {
        IdMaker::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_cloudify_form_and_are_unique() {
        let mut m = IdMaker::seeded(1);
        let ids: HashSet<String> = (0..10_000).map(|_| m.make("web").0).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let suffix = id.strip_prefix("web_").unwrap();
            assert_eq!(suffix.len(), 6);
            assert!(suffix.bytes().all(|b| ALPHABET.contains(&b)));
        }
    }
}
