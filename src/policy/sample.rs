//! Samples and the bounded time windows policies keep of them.
//!
//! A [`Sample`] is one metric reading of one node instance, as an intake (HTTP, Graphite, AMQP)
//! parsed it. A [`Window`] keeps the readings of one series (one source, one policy) that fall
//! within a span of seconds before "now". Memory is bounded twice: by time (points older than
//! the span are dropped whenever the window is touched) and by count — a window never holds more
//! than its `cap` points (the oldest goes first), whatever rate a collector sends at. A point
//! costs 16 bytes, so a series costs at most `16 × cap` bytes (64 KiB at the default cap of
//! [`DEFAULT_MAX_POINTS`]). [`Sources`] bounds the number of series per policy the same way.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

/// Seconds since the Unix epoch, as a float (collectors send fractional seconds). Every time a
/// policy sees comes from its caller: nothing in `policy` reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub f64);

impl Timestamp {
    /// Seconds from `earlier` to `self`.
    pub fn since(self, earlier: Timestamp) -> f64 {
        self.0 - earlier.0
    }
}

/// One metric reading of one node instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub deployment: String,
    pub node_instance: String,
    /// The metric's name (`connections`, `cpu.total.user`): what a policy's `service` matches.
    pub name: String,
    pub value: f64,
    pub at: Timestamp,
}

/// The node of a node instance id: windlass and Cloudify name instances `<node>_<6 chars of
/// [a-z0-9]>`. An id of another form (a collector's own host name) is its own node.
pub fn node_of(instance: &str) -> &str {
    match instance.rsplit_once('_') {
        Some((node, suffix))
            if !node.is_empty()
                && suffix.len() == 6
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            node
        }
        _ => instance,
    }
}

/// Points a window keeps at most unless configured otherwise.
pub const DEFAULT_MAX_POINTS: usize = 4096;

/// Series (sources) a policy tracks at most unless configured otherwise.
pub const DEFAULT_MAX_SOURCES: usize = 10_000;

/// The readings of one series within `span` seconds before now, at most `cap` of them, oldest
/// first.
#[derive(Debug, Clone)]
pub struct Window {
    span: f64,
    cap: usize,
    points: VecDeque<(f64, f64)>,
}

impl Window {
    /// A window of `span` seconds holding at most `cap` points (at least one).
    pub fn new(span: f64, cap: usize) -> Self {
        Window {
            span,
            cap: cap.max(1),
            points: VecDeque::new(),
        }
    }

    /// Adds a reading. Readings arrive nearly in order; a late one is put in its place so that
    /// the window stays sorted by time. At the cap, the oldest point is dropped.
    pub fn push(&mut self, at: Timestamp, value: f64) {
        if self.points.len() == self.cap {
            self.points.pop_front();
        }
        let pos = self.points.partition_point(|(t, _)| *t <= at.0);
        self.points.insert(pos, (at.0, value));
    }

    /// Drops the points that are no longer within the window: a point is in the window while
    /// `now - span < at`, so one exactly `span` seconds old is out.
    pub fn expire(&mut self, now: Timestamp) {
        let edge = now.0 - self.span;
        while self.points.front().is_some_and(|(t, _)| *t <= edge) {
            self.points.pop_front();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// The mean of the points, `None` when there are none.
    pub fn mean(&self) -> Option<f64> {
        if self.points.is_empty() {
            return None;
        }
        Some(self.points.iter().map(|(_, v)| v).sum::<f64>() / self.points.len() as f64)
    }

    /// The newest point.
    pub fn last(&self) -> Option<(Timestamp, f64)> {
        self.points.back().map(|(t, v)| (Timestamp(*t), *v))
    }

    /// Points oldest first.
    pub fn points(&self) -> impl Iterator<Item = (Timestamp, f64)> + '_ {
        self.points.iter().map(|(t, v)| (Timestamp(*t), *v))
    }

    /// The window as JSON for snapshots: `{"points": [[t, v], …], "mean", "last"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "points": self.points.iter().map(|(t, v)| [*t, *v]).collect::<Vec<_>>(),
            "mean": self.mean(),
            "last": self.last().map(|(_, v)| v),
        })
    }
}

/// One window per source (node instance), at most `max_sources` of them: a sample from a new
/// source beyond that is dropped and counted, so a collector inventing instance names cannot
/// grow a policy's memory without bound. A source whose window empties is forgotten.
#[derive(Debug, Clone)]
pub struct Sources {
    span: f64,
    max_points: usize,
    max_sources: usize,
    windows: HashMap<String, Window>,
    /// Samples dropped because `max_sources` was reached.
    pub dropped: u64,
}

impl Sources {
    pub fn new(span: f64, max_points: usize, max_sources: usize) -> Self {
        Sources {
            span,
            max_points,
            max_sources,
            windows: HashMap::new(),
            dropped: 0,
        }
    }

    /// Adds a sample to its source's window; false when it was dropped for the source limit.
    pub fn push(&mut self, sample: &Sample) -> bool {
        if let Some(w) = self.windows.get_mut(&sample.node_instance) {
            w.push(sample.at, sample.value);
            return true;
        }
        if self.windows.len() >= self.max_sources {
            self.dropped += 1;
            return false;
        }
        let mut w = Window::new(self.span, self.max_points);
        w.push(sample.at, sample.value);
        self.windows.insert(sample.node_instance.clone(), w);
        true
    }

    /// Expires every window and forgets the sources left without points.
    pub fn expire(&mut self, now: Timestamp) {
        self.windows.retain(|_, w| {
            w.expire(now);
            !w.is_empty()
        });
    }

    /// Windows of the sources reporting (with at least one point), in no particular order.
    pub fn windows(&self) -> impl Iterator<Item = (&String, &Window)> {
        self.windows.iter().filter(|(_, w)| !w.is_empty())
    }

    /// Sum of the reporting sources' window means divided by their number: the seed's
    /// aggregate. `None` when no source reports.
    pub fn mean_of_means(&self) -> Option<(f64, usize)> {
        let means: Vec<f64> = self.windows().filter_map(|(_, w)| w.mean()).collect();
        if means.is_empty() {
            return None;
        }
        Some((means.iter().sum::<f64>() / means.len() as f64, means.len()))
    }

    /// `{"SOURCE": window, …}` sorted by source, plus the dropped count.
    pub fn to_json(&self) -> serde_json::Value {
        let mut names: Vec<&String> = self.windows.keys().collect();
        names.sort();
        let windows: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|n| (n.clone(), self.windows[n].to_json()))
            .collect();
        serde_json::json!({ "sources": windows, "dropped_samples": self.dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(instance: &str, value: f64, at: f64) -> Sample {
        Sample {
            deployment: "d".into(),
            node_instance: instance.into(),
            name: "m".into(),
            value,
            at: Timestamp(at),
        }
    }

    #[test]
    fn the_node_of_an_instance_id() {
        assert_eq!(node_of("web_x1y2z3"), "web");
        assert_eq!(node_of("my_web_abc123"), "my_web");
        assert_eq!(node_of("web_X1Y2Z3"), "web_X1Y2Z3");
        assert_eq!(node_of("web"), "web");
        assert_eq!(node_of("_abc123"), "_abc123");
    }

    #[test]
    fn a_point_exactly_span_old_is_out_of_the_window() {
        let mut w = Window::new(10.0, 100);
        w.push(Timestamp(100.0), 1.0);
        w.push(Timestamp(105.0), 3.0);
        w.expire(Timestamp(109.999));
        assert_eq!(w.len(), 2);
        w.expire(Timestamp(110.0));
        assert_eq!(w.len(), 1);
        assert_eq!(w.mean(), Some(3.0));
    }

    #[test]
    fn the_cap_bounds_a_window_and_drops_the_oldest() {
        let mut w = Window::new(1e9, 3);
        for i in 0..10 {
            w.push(Timestamp(i as f64), i as f64);
        }
        assert_eq!(w.len(), 3);
        assert_eq!(
            w.points().map(|(_, v)| v).collect::<Vec<_>>(),
            [7.0, 8.0, 9.0]
        );
    }

    #[test]
    fn a_late_point_is_put_in_time_order() {
        let mut w = Window::new(100.0, 10);
        w.push(Timestamp(3.0), 3.0);
        w.push(Timestamp(1.0), 1.0);
        w.push(Timestamp(2.0), 2.0);
        assert_eq!(
            w.points().map(|(t, _)| t.0).collect::<Vec<_>>(),
            [1.0, 2.0, 3.0]
        );
        assert_eq!(w.last().map(|(_, v)| v), Some(3.0));
    }

    #[test]
    fn sources_average_the_means_of_reporting_sources_and_cap_their_number() {
        let mut s = Sources::new(10.0, 100, 2);
        s.push(&sample("a", 10.0, 0.0));
        s.push(&sample("a", 20.0, 1.0));
        s.push(&sample("b", 30.0, 1.0));
        assert!(!s.push(&sample("c", 1000.0, 1.0)));
        assert_eq!(s.dropped, 1);
        // (15 + 30) / 2
        assert_eq!(s.mean_of_means(), Some((22.5, 2)));
        s.expire(Timestamp(10.5));
        // a's first point is out; b and a's second remain.
        assert_eq!(s.mean_of_means(), Some((25.0, 2)));
        s.expire(Timestamp(11.0));
        assert_eq!(s.mean_of_means(), None);
    }
}
