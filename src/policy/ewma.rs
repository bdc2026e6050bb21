//! `cloudify.policies.types.ewma_stabilized`: the threshold policy over an exponentially
//! weighted moving average of the samples.
//!
//! As Riemann's `ewma-timeless`, which Cloudify's policy is built on: the average starts at 0
//! and each sample moves it to `r × value + (1 − r) × average` (`ewma_timeless_r`, 0.5 by
//! default: the smaller, the less one sample weighs). Everything else — `threshold`,
//! `upper_bound`, `stability_time`, the restraints — is [`super::threshold`]'s, which owns the
//! state and calls [`next`].

/// The average after one more sample.
pub fn next(previous: Option<f64>, r: f64, value: f64) -> f64 {
    r * value + (1.0 - r) * previous.unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::super::threshold::tests::{STARTED, sample, spec};
    use super::super::threshold::{Threshold, ThresholdSpec};
    use super::super::{Outcome, Policy, Timestamp};

    #[test]
    fn the_average_starts_at_zero_and_fires_once_it_passes_the_threshold() {
        // r = 0.5, samples of 100 against a threshold of 80: 50, 75, 87.5.
        let mut p = Threshold::new(ThresholdSpec {
            ewma_r: Some(0.5),
            ..spec()
        });
        let got: Vec<(Outcome, f64)> = (0..3)
            .map(|i| {
                let v = p.observe(
                    &sample("a", "cpu", 100.0, i as f64),
                    Timestamp(i as f64),
                    &STARTED,
                );
                (v[0].outcome, v[0].numbers["ewma"].as_f64().unwrap())
            })
            .collect();
        assert_eq!(
            got,
            [
                (Outcome::NotBreached, 50.0),
                (Outcome::NotBreached, 75.0),
                (Outcome::Fired, 87.5)
            ]
        );
    }

    #[test]
    fn one_spike_does_not_move_a_heavily_smoothed_average_past_the_threshold() {
        let mut p = Threshold::new(ThresholdSpec {
            ewma_r: Some(0.1),
            ..spec()
        });
        for i in 0..50 {
            p.observe(
                &sample("a", "cpu", 50.0, i as f64),
                Timestamp(i as f64),
                &STARTED,
            );
        }
        let v = p.observe(&sample("a", "cpu", 300.0, 50.0), Timestamp(50.0), &STARTED);
        // 0.1 × 300 + 0.9 × ~50 ≈ 75: the raw value breaches, the average does not.
        assert_eq!(v[0].outcome, Outcome::NotBreached);
    }
}
