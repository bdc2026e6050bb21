//! From a compiled policy to a running one: the built-in policy types, their properties and
//! defaults, and [`build`].
//!
//! [`BUILTIN_TYPES`] is the one list of what windlass evaluates: the DSL consults it so that
//! these types need no import and their properties are checked where they are written, and
//! [`build`] reads each property with its default into the type's spec. Cloudify's three types
//! carry Cloudify's properties and defaults (`types.yaml`'s `policy_types`); every type accepts
//! `dry_run`. A type declared in a blueprint whose `source` is Clojure (`*.clj`, Riemann code) is
//! refused: windlass does not run Riemann, and the message says which built-in type to use.

use regex::Regex;
use serde_json::{Map, Value as Json};

use super::Policy;
use super::host_failure::{HostFailure, HostFailureSpec};
use super::hpa::{Hpa, HpaSpec};
use super::predictive::{Predictive, PredictiveSpec};
use super::sample::{DEFAULT_MAX_POINTS, DEFAULT_MAX_SOURCES};
use super::sliding_window::{Direction, SlidingWindow, SlidingWindowSpec};
use super::threshold::{Threshold, ThresholdSpec};

/// A built-in policy type: its name and its properties with their defaults (JSON text; `None`
/// for a required property).
#[derive(Debug)]
pub struct TypeSpec {
    pub name: &'static str,
    pub properties: &'static [(&'static str, Option<&'static str>)],
}

impl TypeSpec {
    /// Property names, `dry_run` included.
    pub fn property_names(&self) -> impl Iterator<Item = &'static str> {
        self.properties
            .iter()
            .map(|(n, _)| *n)
            .chain(std::iter::once("dry_run"))
    }
}

pub const THRESHOLD: &str = "cloudify.policies.types.threshold";
pub const EWMA_STABILIZED: &str = "cloudify.policies.types.ewma_stabilized";
pub const HOST_FAILURE: &str = "cloudify.policies.types.host_failure";
pub const SLIDING_WINDOW: &str = "windlass.policies.types.sliding_window";
pub const HPA: &str = "windlass.policies.types.hpa";
pub const PREDICTIVE: &str = "windlass.policies.types.predictive";

/// Cloudify's restraints, common to its three types.
const COMMON: [(&str, Option<&str>); 3] = [
    ("policy_operates_on_group", Some("false")),
    ("is_node_started_before_workflow", Some("true")),
    ("interval_between_workflows", Some("300")),
];

macro_rules! with_common {
    ($($p:expr),* $(,)?) => {
        &[$($p,)* COMMON[0], COMMON[1], COMMON[2]]
    };
}

/// Every policy type windlass evaluates.
pub const BUILTIN_TYPES: &[TypeSpec] = &[
    TypeSpec {
        name: THRESHOLD,
        properties: with_common![
            ("service", Some("\"service\"")),
            ("threshold", None),
            ("upper_bound", Some("true")),
            ("stability_time", Some("0")),
        ],
    },
    TypeSpec {
        name: EWMA_STABILIZED,
        properties: with_common![
            ("service", Some("\"service\"")),
            ("threshold", None),
            ("upper_bound", Some("true")),
            ("stability_time", Some("0")),
            ("ewma_timeless_r", Some("0.5")),
        ],
    },
    TypeSpec {
        name: HOST_FAILURE,
        properties: with_common![("service", Some("[\"service\"]"))],
    },
    TypeSpec {
        name: SLIDING_WINDOW,
        properties: &[
            ("service", Some("\".*\"")),
            ("moving_window_size", Some("10")),
            ("scale_threshold", None),
            ("scale_limit", Some("10")),
            ("scale_direction", Some("\"<\"")),
            ("scale_step", Some("1")),
            ("cooldown_time", Some("30")),
        ],
    },
    TypeSpec {
        name: HPA,
        properties: &[
            ("service", Some("\".*\"")),
            ("target_value", None),
            ("min_replicas", Some("1")),
            ("max_replicas", None),
            ("tolerance", Some("0.1")),
            ("scale_down_stabilization", Some("300")),
            ("window", Some("60")),
            ("sync_period", Some("15")),
        ],
    },
    TypeSpec {
        name: PREDICTIVE,
        properties: &[
            ("service", Some("\".*\"")),
            ("threshold", None),
            ("upper_bound", Some("true")),
            ("window", Some("300")),
            ("horizon", Some("60")),
            ("alpha", Some("0.5")),
            ("beta", Some("0.3")),
            ("min_points", Some("3")),
            ("cooldown", Some("300")),
        ],
    },
];

/// The built-in type of that name.
pub fn builtin_type(name: &str) -> Option<&'static TypeSpec> {
    BUILTIN_TYPES.iter().find(|t| t.name == name)
}

fn builtin_names() -> String {
    BUILTIN_TYPES
        .iter()
        .map(|t| format!("`{}`", t.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the caller (`windlass serve`) sets for every policy.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds without a sample after which `host_failure` fires (`--host-failure-ttl`).
    pub host_failure_ttl: f64,
    /// Points per window at most.
    pub max_points: usize,
    /// Sources (node instances) per policy at most.
    pub max_sources: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host_failure_ttl: 60.0,
            max_points: DEFAULT_MAX_POINTS,
            max_sources: DEFAULT_MAX_SOURCES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "policy `{policy}` has the type `{ty}`, which windlass does not know; the built-in types are {known}"
    )]
    UnknownType {
        policy: String,
        ty: String,
        known: String,
    },
    #[error(
        "policy `{policy}` has the type `{ty}`, implemented in Clojure (`{file}`) for Riemann, which windlass does not run; use a built-in type instead ({known}): a sliding-window scaler ports to `windlass.policies.types.sliding_window` (properties `service`, `moving_window_size`, `scale_threshold`, `scale_limit`, `scale_direction`, `cooldown_time`), a threshold to `cloudify.policies.types.threshold`"
    )]
    Clojure {
        policy: String,
        ty: String,
        file: String,
        known: String,
    },
    #[error("policy `{policy}` ({ty}) has no property `{property}`{}", did_you_mean.as_ref().map(|d| format!("; {d}")).unwrap_or_default())]
    UnknownProperty {
        policy: String,
        ty: String,
        property: String,
        did_you_mean: Option<String>,
    },
    #[error("policy `{policy}` ({ty}) needs the property `{property}`")]
    MissingProperty {
        policy: String,
        ty: String,
        property: String,
    },
    #[error("policy `{policy}`: property `{property}` must be {expected}, found {found}")]
    BadValue {
        policy: String,
        property: String,
        expected: String,
        found: String,
    },
    #[error("policy `{policy}`: trigger `{trigger}`: {message}")]
    BadTrigger {
        policy: String,
        trigger: String,
        message: String,
    },
    #[error("policy `{policy}` is not an object with `type` and `properties`")]
    Malformed { policy: String },
}

/// A policy's properties with its type's defaults filled in, read with typed errors.
struct Props<'a> {
    policy: &'a str,
    values: Map<String, Json>,
}

impl<'a> Props<'a> {
    fn new(
        policy: &'a str,
        ty: &'static TypeSpec,
        given: &Map<String, Json>,
    ) -> Result<Self, PolicyError> {
        let mut values = Map::new();
        for (k, v) in given {
            if !ty.property_names().any(|n| n == k) {
                return Err(PolicyError::UnknownProperty {
                    policy: policy.into(),
                    ty: ty.name.into(),
                    property: k.clone(),
                    did_you_mean: crate::diag::did_you_mean(k, ty.property_names()),
                });
            }
            values.insert(k.clone(), v.clone());
        }
        for (name, default) in ty.properties {
            if values.contains_key(*name) {
                continue;
            }
            match default {
                Some(text) => {
                    let v = serde_json::from_str(text).expect("built-in defaults are JSON");
                    values.insert((*name).into(), v);
                }
                None => {
                    return Err(PolicyError::MissingProperty {
                        policy: policy.into(),
                        ty: ty.name.into(),
                        property: (*name).into(),
                    });
                }
            }
        }
        Ok(Props { policy, values })
    }

    fn bad(&self, property: &str, expected: &str) -> PolicyError {
        PolicyError::BadValue {
            policy: self.policy.into(),
            property: property.into(),
            expected: expected.into(),
            found: self
                .values
                .get(property)
                .map_or("nothing".into(), Json::to_string),
        }
    }

    /// A number; numeric strings are accepted (inputs often arrive as text).
    fn num(&self, property: &str) -> Result<f64, PolicyError> {
        let v = self.values.get(property);
        v.and_then(Json::as_f64)
            .or_else(|| v.and_then(Json::as_str).and_then(|s| s.trim().parse().ok()))
            .filter(|x: &f64| x.is_finite())
            .ok_or_else(|| self.bad(property, "a number"))
    }

    fn non_negative(&self, property: &str) -> Result<f64, PolicyError> {
        self.num(property)
            .ok()
            .filter(|x| *x >= 0.0)
            .ok_or_else(|| self.bad(property, "a number ≥ 0"))
    }

    fn positive(&self, property: &str) -> Result<f64, PolicyError> {
        self.num(property)
            .ok()
            .filter(|x| *x > 0.0)
            .ok_or_else(|| self.bad(property, "a number > 0"))
    }

    fn fraction(&self, property: &str) -> Result<f64, PolicyError> {
        self.num(property)
            .ok()
            .filter(|x| *x > 0.0 && *x <= 1.0)
            .ok_or_else(|| self.bad(property, "a number in (0, 1]"))
    }

    fn count(&self, property: &str) -> Result<u64, PolicyError> {
        let x = self.num(property)?;
        if x >= 0.0 && x.fract() == 0.0 {
            Ok(x as u64)
        } else {
            Err(self.bad(property, "a non-negative integer"))
        }
    }

    fn bool(&self, property: &str) -> Result<bool, PolicyError> {
        match self.values.get(property) {
            Some(Json::Bool(b)) => Ok(*b),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.bad(property, "true or false")),
        }
    }

    /// A regular expression matched against the whole metric name.
    fn regex_of(&self, property: &str, text: &str) -> Result<Regex, PolicyError> {
        Regex::new(&format!("^(?:{text})$")).map_err(|e| PolicyError::BadValue {
            policy: self.policy.into(),
            property: property.into(),
            expected: "a regular expression".into(),
            found: format!("`{text}` ({e})"),
        })
    }

    fn regex(&self, property: &str) -> Result<Regex, PolicyError> {
        match self.values.get(property) {
            Some(Json::String(s)) => self.regex_of(property, s),
            _ => Err(self.bad(property, "a regular expression (a string)")),
        }
    }

    /// One regular expression or a list of them.
    fn regexes(&self, property: &str) -> Result<Vec<Regex>, PolicyError> {
        match self.values.get(property) {
            Some(Json::String(s)) => Ok(vec![self.regex_of(property, s)?]),
            Some(Json::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Json::String(s) => self.regex_of(property, s),
                    _ => Err(self.bad(property, "a list of regular expressions")),
                })
                .collect(),
            _ => Err(self.bad(property, "a regular expression or a list of them")),
        }
    }
}

/// A running policy and what [`super::PolicySet`] needs to know about it.
pub struct Built {
    pub policy: Box<dyn Policy>,
    pub dry_run: bool,
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Built")
            .field("dry_run", &self.dry_run)
            .finish()
    }
}

/// Builds policy `name` of type `ty` from its properties. `source` is the `source` of the
/// blueprint's declaration of `ty`, if it declares one (to tell a Clojure policy from a typo).
pub fn build(
    name: &str,
    ty: &str,
    source: Option<&str>,
    properties: &Map<String, Json>,
    settings: &Settings,
) -> Result<Built, PolicyError> {
    let Some(spec) = builtin_type(ty) else {
        return Err(match source {
            Some(src) if src.trim_end().ends_with(".clj") => PolicyError::Clojure {
                policy: name.into(),
                ty: ty.into(),
                file: src.into(),
                known: builtin_names(),
            },
            _ => PolicyError::UnknownType {
                policy: name.into(),
                ty: ty.into(),
                known: builtin_names(),
            },
        });
    };
    let p = Props::new(name, spec, properties)?;
    let dry_run = match p.values.get("dry_run") {
        None => false,
        Some(_) => p.bool("dry_run")?,
    };
    let policy: Box<dyn Policy> = match spec.name {
        THRESHOLD | EWMA_STABILIZED => Box::new(Threshold::new(ThresholdSpec {
            service: p.regex("service")?,
            threshold: p.num("threshold")?,
            upper_bound: p.bool("upper_bound")?,
            stability_time: p.non_negative("stability_time")?,
            on_group: p.bool("policy_operates_on_group")?,
            interval_between_workflows: p.num("interval_between_workflows")?,
            is_node_started_before_workflow: p.bool("is_node_started_before_workflow")?,
            ewma_r: if spec.name == EWMA_STABILIZED {
                Some(p.fraction("ewma_timeless_r")?)
            } else {
                None
            },
            max_keys: settings.max_sources,
        })),
        HOST_FAILURE => Box::new(HostFailure::new(HostFailureSpec {
            services: p.regexes("service")?,
            ttl: settings.host_failure_ttl,
            on_group: p.bool("policy_operates_on_group")?,
            interval_between_workflows: p.num("interval_between_workflows")?,
            is_node_started_before_workflow: p.bool("is_node_started_before_workflow")?,
            max_keys: settings.max_sources,
        })),
        SLIDING_WINDOW => Box::new(SlidingWindow::new(SlidingWindowSpec {
            policy: name.into(),
            service: p.regex("service")?,
            moving_window_size: p.positive("moving_window_size")?,
            scale_threshold: p.num("scale_threshold")?,
            scale_limit: p.count("scale_limit")?,
            scale_direction: match p.values.get("scale_direction").and_then(Json::as_str) {
                Some("<") => Direction::Up,
                Some(">") => Direction::Down,
                _ => return Err(p.bad("scale_direction", "'<' (scale up) or '>' (scale down)")),
            },
            scale_step: match p.count("scale_step")? {
                0 => return Err(p.bad("scale_step", "an integer ≥ 1")),
                n => n,
            },
            cooldown_time: p.non_negative("cooldown_time")?,
            max_points: settings.max_points,
            max_sources: settings.max_sources,
        })),
        HPA => {
            let min_replicas = p.count("min_replicas")?;
            let max_replicas = p.count("max_replicas")?;
            if max_replicas < min_replicas {
                return Err(p.bad(
                    "max_replicas",
                    &format!("at least min_replicas ({min_replicas})"),
                ));
            }
            Box::new(Hpa::new(HpaSpec {
                policy: name.into(),
                service: p.regex("service")?,
                target_value: p.positive("target_value")?,
                min_replicas,
                max_replicas,
                tolerance: p.non_negative("tolerance")?,
                scale_down_stabilization: p.non_negative("scale_down_stabilization")?,
                window: p.positive("window")?,
                sync_period: p.non_negative("sync_period")?,
                max_points: settings.max_points,
                max_sources: settings.max_sources,
            }))
        }
        PREDICTIVE => {
            let min_points = p.count("min_points")?;
            if min_points < 2 {
                return Err(p.bad("min_points", "an integer ≥ 2 (a trend needs two points)"));
            }
            Box::new(Predictive::new(PredictiveSpec {
                service: p.regex("service")?,
                threshold: p.num("threshold")?,
                upper_bound: p.bool("upper_bound")?,
                window: p.positive("window")?,
                horizon: p.non_negative("horizon")?,
                alpha: p.fraction("alpha")?,
                beta: p.fraction("beta")?,
                min_points: min_points as usize,
                cooldown: p.non_negative("cooldown")?,
                max_points: settings.max_points,
                max_sources: settings.max_sources,
            }))
        }
        _ => {
            return Err(PolicyError::UnknownType {
                policy: name.into(),
                ty: ty.into(),
                known: builtin_names(),
            });
        }
    };
    Ok(Built { policy, dry_run })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn props(v: Json) -> Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    fn err(ty: &str, source: Option<&str>, v: Json) -> PolicyError {
        build("p", ty, source, &props(v), &Settings::default()).unwrap_err()
    }

    #[test]
    fn every_builtin_type_builds_from_its_required_properties() {
        let required =
            json!({"threshold": 1, "scale_threshold": 1, "target_value": 1, "max_replicas": 3});
        for t in BUILTIN_TYPES {
            let given: Map<String, Json> = props(required.clone())
                .into_iter()
                .filter(|(k, _)| t.properties.iter().any(|(n, _)| n == k))
                .collect();
            build("p", t.name, None, &given, &Settings::default())
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        }
    }

    #[test]
    fn a_clojure_policy_type_is_refused_with_the_way_to_port_it() {
        let e = err("scale_policy_type", Some("scale.clj"), json!({}));
        let text = e.to_string();
        assert!(matches!(e, PolicyError::Clojure { .. }));
        assert!(
            text.contains("windlass.policies.types.sliding_window"),
            "{text}"
        );
        assert!(
            text.contains("cloudify.policies.types.host_failure"),
            "{text}"
        );
        assert!(matches!(
            err("nope", None, json!({})),
            PolicyError::UnknownType { .. }
        ));
    }

    #[test]
    fn unknown_missing_and_bad_properties_are_typed_errors() {
        let e = err(THRESHOLD, None, json!({"threshold": 1, "treshold": 2}));
        assert_eq!(
            e.to_string(),
            "policy `p` (cloudify.policies.types.threshold) has no property `treshold`; did you mean `threshold`?"
        );
        assert!(matches!(
            err(THRESHOLD, None, json!({})),
            PolicyError::MissingProperty { .. }
        ));
        let e = err(
            SLIDING_WINDOW,
            None,
            json!({"scale_threshold": 1, "scale_direction": ">="}),
        );
        assert!(e.to_string().contains("scale_direction"), "{e}");
        let e = err(THRESHOLD, None, json!({"threshold": 1, "service": "("}));
        assert!(e.to_string().contains("regular expression"), "{e}");
        let e = err(
            HPA,
            None,
            json!({"target_value": 1, "min_replicas": 5, "max_replicas": 2}),
        );
        assert!(e.to_string().contains("max_replicas"), "{e}");
        let e = err(THRESHOLD, None, json!({"threshold": 1, "dry_run": "maybe"}));
        assert!(e.to_string().contains("dry_run"), "{e}");
    }

    #[test]
    fn numeric_strings_are_numbers() {
        build(
            THRESHOLD,
            THRESHOLD,
            None,
            &props(json!({"threshold": "80"})),
            &Settings::default(),
        )
        .unwrap();
    }
}
