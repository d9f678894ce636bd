//! Who may do what: the `role` claim of a token.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ParseEnumError;

/// A person's role. A token without a `role` claim is a candidate: put `#[serde(default)]` on the claim's
/// field so that a missing claim becomes [`Role::Candidate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes exams; sees only their own sessions.
    #[default]
    Candidate,
    /// Watches and ends sessions; sees every session and proctor-only failure detail.
    Proctor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 2] = [Role::Candidate, Role::Proctor];

    /// The lowercase name used on the wire: `"candidate"` or `"proctor"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Candidate => "candidate",
            Role::Proctor => "proctor",
        }
    }

    /// Whether this is [`Role::Proctor`].
    pub const fn is_proctor(self) -> bool {
        matches!(self, Role::Proctor)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseEnumError;
    /// Parses `candidate` or `proctor` (lowercase only, like the claim).
    fn from_str(s: &str) -> Result<Self, ParseEnumError> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseEnumError::new("role", s, "candidate, proctor"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        role: Role,
    }

    #[test]
    fn default_is_candidate() {
        assert_eq!(Role::default(), Role::Candidate);
        let c: Claims = serde_json::from_str("{}").unwrap();
        assert_eq!(c.role, Role::Candidate);
        let c: Claims = serde_json::from_str(r#"{"role":"proctor"}"#).unwrap();
        assert_eq!(c.role, Role::Proctor);
    }

    #[test]
    fn serde_is_lowercase_and_strict() {
        assert_eq!(serde_json::to_string(&Role::Proctor).unwrap(), "\"proctor\"");
        assert!(serde_json::from_str::<Role>("\"Proctor\"").is_err());
        assert!(serde_json::from_str::<Role>("\"admin\"").is_err());
    }

    #[test]
    fn parse_and_display() {
        for r in Role::ALL {
            assert_eq!(r.to_string().parse::<Role>().unwrap(), r);
        }
        assert!("PROCTOR".parse::<Role>().is_err());
        assert!(Role::Proctor.is_proctor());
        assert!(!Role::Candidate.is_proctor());
    }
}
