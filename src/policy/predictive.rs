//! `windlass.policies.types.predictive`: act on where the metric is going, not where it is.
//!
//! Each source keeps a window of `window` seconds. On every sample, Holt's linear trend method
//! runs over each source's window, oldest point first: the level follows the values
//! (`alpha`), the trend follows the level's slope per second (`beta`); samples need not be
//! evenly spaced, because the trend is per second and each step uses the time between points.
//! A source's forecast is `level + trend × horizon`; the policy's forecast is the mean of the
//! forecasts of the sources with at least `min_points` points. It fires when the forecast is past
//! `threshold` (above it with `upper_bound`, the default; below it otherwise), then holds back for
//! `cooldown` seconds. The forecast and what it was made from (level, trend, horizon, points,
//! alpha, beta) go in every decision.

use regex::Regex;
use serde_json::{Value as Json, json};

use super::restraints::Restraints;
use super::sample::{Sources, Window};
use super::{Outcome, Policy, Sample, Timestamp, Verdict, View, round};

#[derive(Debug, Clone)]
pub struct PredictiveSpec {
    pub service: Regex,
    pub threshold: f64,
    pub upper_bound: bool,
    pub window: f64,
    pub horizon: f64,
    pub alpha: f64,
    pub beta: f64,
    pub min_points: usize,
    pub cooldown: f64,
    pub max_points: usize,
    pub max_sources: usize,
}

/// Holt's method over one window: (level, trend per second).
pub fn holt(window: &Window, alpha: f64, beta: f64) -> Option<(f64, f64)> {
    let mut points = window.points();
    let (mut prev_t, first) = points.next()?;
    let mut level = first;
    let mut trend = 0.0;
    for (t, y) in points {
        let dt = t.since(prev_t);
        let predicted = level + trend * dt;
        let new_level = alpha * y + (1.0 - alpha) * predicted;
        if dt > 0.0 {
            trend = beta * (new_level - level) / dt + (1.0 - beta) * trend;
        }
        level = new_level;
        prev_t = t;
    }
    Some((level, trend))
}

#[derive(Debug)]
pub struct Predictive {
    spec: PredictiveSpec,
    sources: Sources,
    cooldown: Restraints,
    last_forecast: Option<f64>,
}

impl Predictive {
    pub fn new(spec: PredictiveSpec) -> Self {
        Predictive {
            sources: Sources::new(spec.window, spec.max_points, spec.max_sources),
            cooldown: Restraints::new(spec.cooldown, false, "cooldown"),
            last_forecast: None,
            spec,
        }
    }

    /// (forecast, mean level, mean trend, points, sources) over sources with enough points.
    fn forecast(&self) -> Option<(f64, f64, f64, usize, usize)> {
        let s = &self.spec;
        let fits: Vec<((f64, f64), usize)> = self
            .sources
            .windows()
            .filter(|(_, w)| w.len() >= s.min_points)
            .filter_map(|(_, w)| holt(w, s.alpha, s.beta).map(|f| (f, w.len())))
            .collect();
        if fits.is_empty() {
            return None;
        }
        let n = fits.len() as f64;
        let level = fits.iter().map(|((l, _), _)| l).sum::<f64>() / n;
        let trend = fits.iter().map(|((_, b), _)| b).sum::<f64>() / n;
        let points = fits.iter().map(|(_, p)| p).sum();
        Some((level + trend * s.horizon, level, trend, points, fits.len()))
    }
}

impl Policy for Predictive {
    fn observe(&mut self, sample: &Sample, now: Timestamp, view: &dyn View) -> Vec<Verdict> {
        if !self.spec.service.is_match(&sample.name) {
            return Vec::new();
        }
        self.sources.push(sample);
        self.sources.expire(now);
        let s = &self.spec;
        let Some((forecast, level, trend, points, sources)) = self.forecast() else {
            self.last_forecast = None;
            return vec![
                Verdict::new(
                    Outcome::NoData,
                    format!(
                        "no source has {} points within the window yet",
                        s.min_points
                    ),
                )
                .num("min_points", s.min_points)
                .from_sample(sample),
            ];
        };
        self.last_forecast = Some(forecast);
        let (crossed, side) = if s.upper_bound {
            (forecast > s.threshold, "above")
        } else {
            (forecast < s.threshold, "below")
        };
        let f = round(forecast);
        let base = |v: Verdict| {
            v.num("forecast", f)
                .num("level", round(level))
                .num("trend_per_second", round(trend))
                .num("horizon", s.horizon)
                .num("threshold", s.threshold)
                .num("alpha", s.alpha)
                .num("beta", s.beta)
                .num("points", points)
                .num("sources", sources)
                .from_sample(sample)
        };
        let horizon = s.horizon;
        let threshold = s.threshold;
        if !crossed {
            return vec![base(Verdict::new(
                Outcome::NotBreached,
                format!("the forecast {f} in {horizon}s is not {side} the threshold {threshold}"),
            ))];
        }
        if let Some(mut held) = self.cooldown.hold(None, now, view) {
            held.reason = format!(
                "the forecast {f} in {horizon}s is {side} the threshold {threshold}, but {}",
                held.reason
            );
            return vec![base(held)];
        }
        self.cooldown.fire(None, now);
        vec![base(Verdict::new(
            Outcome::Fired,
            format!(
                "the forecast {f} in {horizon}s (level {}, trend {}/s) is {side} the threshold {threshold}",
                round(level),
                round(trend)
            ),
        ))]
    }

    fn tick(&mut self, now: Timestamp, _view: &dyn View) -> Vec<Verdict> {
        self.sources.expire(now);
        Vec::new()
    }

    fn snapshot(&self, now: Timestamp) -> Json {
        let mut s = self.sources.to_json();
        s["forecast"] = json!(self.last_forecast.map(round));
        s["cooldown_left"] = json!(round(self.cooldown.left(None, now)));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{STARTED, sample};
    use super::*;

    fn spec() -> PredictiveSpec {
        PredictiveSpec {
            service: Regex::new("^(?:load)$").unwrap(),
            threshold: 100.0,
            upper_bound: true,
            window: 600.0,
            horizon: 60.0,
            alpha: 0.5,
            beta: 0.5,
            min_points: 3,
            cooldown: 300.0,
            max_points: 1000,
            max_sources: 10,
        }
    }

    #[test]
    fn holt_follows_a_straight_line() {
        let mut w = Window::new(1000.0, 1000);
        for i in 0..200 {
            w.push(Timestamp(i as f64 * 10.0), 5.0 + 2.0 * i as f64);
        }
        let (level, trend) = holt(&w, 0.5, 0.5).unwrap();
        assert!((trend - 0.2).abs() < 1e-6, "trend {trend}");
        assert!((level - (5.0 + 2.0 * 199.0)).abs() < 1e-6, "level {level}");
    }

    #[test]
    fn fires_when_the_forecast_crosses_before_the_value_does() {
        let mut p = Predictive::new(spec());
        // A ramp of 1 per second, sampled every 5 s: the value is 50..80, below 100, but in 60 s
        // it will be past 100.
        let mut last = None;
        for i in 0..=6 {
            let t = i as f64 * 5.0;
            let v = p.observe(&sample("a", "load", 50.0 + t, t), Timestamp(t), &STARTED);
            last = v.into_iter().next();
            if last.as_ref().is_some_and(Verdict::fired) {
                break;
            }
        }
        let v = last.unwrap();
        assert_eq!(v.outcome, Outcome::Fired, "{}", v.reason);
        assert!(v.value.unwrap() < 100.0);
        assert!(v.numbers["forecast"].as_f64().unwrap() > 100.0);
        for key in [
            "level",
            "trend_per_second",
            "horizon",
            "points",
            "alpha",
            "beta",
        ] {
            assert!(v.numbers.contains_key(key), "{key}");
        }
    }

    #[test]
    fn a_flat_series_below_the_threshold_and_too_few_points_do_not_fire() {
        let mut p = Predictive::new(spec());
        let first = p.observe(&sample("a", "load", 99.0, 0.0), Timestamp(0.0), &STARTED);
        assert_eq!(first[0].outcome, Outcome::NoData);
        for i in 1..20 {
            let t = i as f64;
            let v = p.observe(&sample("a", "load", 99.0, t), Timestamp(t), &STARTED);
            assert!(!v[0].fired(), "{}", v[0].reason);
        }
    }

    #[test]
    fn a_falling_series_fires_a_lower_bound_and_cooldown_holds_the_next() {
        let mut p = Predictive::new(PredictiveSpec {
            upper_bound: false,
            threshold: 10.0,
            ..spec()
        });
        let mut outcomes = Vec::new();
        for i in 0..10 {
            let t = i as f64 * 5.0;
            let v = p.observe(&sample("a", "load", 60.0 - t, t), Timestamp(t), &STARTED);
            outcomes.push(v[0].outcome);
        }
        let fired = outcomes.iter().position(|o| *o == Outcome::Fired).unwrap();
        assert!(
            outcomes[fired + 1..]
                .iter()
                .all(|o| *o == Outcome::Cooldown),
            "{outcomes:?}"
        );
    }
}
