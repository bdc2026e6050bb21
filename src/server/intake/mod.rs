//! Metric intakes: each only parses what collectors send into [`Sample`]s and hands them to
//! the policy runtime ([`super::runtime::Handle::submit`]). Malformed input is counted (and
//! the last reason kept) per protocol, never fatal: a collector sending garbage costs its own
//! lines, nothing else.
//!
//! - `http.rs`: `POST /api/v1/metrics`, a JSON array of points.
//! - `graphite.rs`: Graphite plaintext over TCP (what Diamond emits), lines mapped to
//!   deployment, instance and metric by a template.
//! - `amqp.rs`: Diamond's Cloudify handler messages on the `cloudify-monitoring` topic
//!   exchange (the seed's path), through RabbitMQ.
//!
//! [`Sample`]: crate::policy::Sample

pub mod amqp;
pub mod graphite;
pub mod http;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value as Json, json};

/// What one protocol took in.
#[derive(Debug, Default)]
pub struct Counter {
    pub accepted: AtomicU64,
    pub malformed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counter {
    pub fn accept(&self, n: u64) {
        self.accepted.fetch_add(n, Ordering::Relaxed);
    }

    /// Count one malformed point and remember why (the reason never quotes a whole line: a
    /// collector may put anything in it).
    pub fn malformed(&self, why: String) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(why);
        }
    }

    fn to_json(&self) -> Json {
        json!({
            "accepted": self.accepted.load(Ordering::Relaxed),
            "malformed": self.malformed.load(Ordering::Relaxed),
            "last_error": self.last_error.lock().ok().and_then(|l| l.clone()),
        })
    }
}

/// Every intake's counters, for `/api/v1/status` and the log.
#[derive(Debug, Default)]
pub struct Counters {
    pub http: Counter,
    pub graphite: Counter,
    pub amqp: Counter,
}

impl Counters {
    pub fn to_json(&self) -> Json {
        json!({
            "http": self.http.to_json(),
            "graphite": self.graphite.to_json(),
            "amqp": self.amqp.to_json(),
        })
    }
}

/// A reason that quotes at most the first 80 characters of what it is about.
pub(crate) fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(80).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}
