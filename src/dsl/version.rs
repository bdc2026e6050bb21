//! DSL versions and the features each one introduced.
//!
//! A blueprint states `tosca_definitions_version: cloudify_dsl_1_X`; a feature used under an older
//! version is refused with a message that names the version that introduced it.

use std::fmt;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum DslVersion {
    V1_0,
    V1_1,
    V1_2,
    V1_3,
    V1_4,
    V1_5,
}

impl DslVersion {
    pub const ALL: [DslVersion; 6] = [
        DslVersion::V1_0,
        DslVersion::V1_1,
        DslVersion::V1_2,
        DslVersion::V1_3,
        DslVersion::V1_4,
        DslVersion::V1_5,
    ];

    pub fn parse(text: &str) -> Option<DslVersion> {
        DslVersion::ALL.into_iter().find(|v| v.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DslVersion::V1_0 => "cloudify_dsl_1_0",
            DslVersion::V1_1 => "cloudify_dsl_1_1",
            DslVersion::V1_2 => "cloudify_dsl_1_2",
            DslVersion::V1_3 => "cloudify_dsl_1_3",
            DslVersion::V1_4 => "cloudify_dsl_1_4",
            DslVersion::V1_5 => "cloudify_dsl_1_5",
        }
    }
}

impl fmt::Display for DslVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders() {
        assert_eq!(
            DslVersion::parse("cloudify_dsl_1_3"),
            Some(DslVersion::V1_3)
        );
        assert_eq!(DslVersion::parse("cloudify_dsl_2_0"), None);
        assert!(DslVersion::V1_0 < DslVersion::V1_5);
    }
}
