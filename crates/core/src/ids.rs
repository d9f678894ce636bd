//! Identifiers: who ([`UserId`]), what ([`ExamId`]), which attempt ([`ExamSessionId`]), which sandbox
//! ([`EnvironmentId`]) and which log entry to quote ([`IncidentId`]).
//!
//! Every identifier is a newtype so that one can never be passed where another is expected. Each one is
//! validated when it is made from text ([`FromStr`], `parse`, and serde deserialization all go through the
//! same check), so a value of these types is always well formed: safe to put in a log line, a file name, a
//! hostname or a cgroup name.
//!
//! Text forms:
//!
//! | type | form |
//! |---|---|
//! | [`UserId`] | 1 to 128 characters of `A-Z a-z 0-9 . _ @ -`, and not `.` or `..` |
//! | [`ExamId`] | 1 to 64 characters of `a-z 0-9 -`, not starting with `-` |
//! | [`ExamSessionId`], [`EnvironmentId`] | a UUID in its hyphenated 36-character form |
//! | [`IncidentId`] | `inc-` followed by 16 lowercase hex digits |
//!
//! A malformed [`ExamSessionId`] in a request must be answered exactly like a session that does not exist
//! (`session_not_found`); that is why [`IdError`] deliberately has no conversion into
//! [`DomainError`](crate::DomainError).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a piece of text was refused as an identifier.
///
/// The messages name the kind of identifier and the rule that was broken; they never echo more than the one
/// offending character.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The text was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier, for example "user id".
        kind: &'static str,
    },
    /// The text was longer than allowed.
    #[error("{kind} is too long: {len} characters, at most {max} are allowed")]
    TooLong {
        /// Which identifier.
        kind: &'static str,
        /// How many characters the text had.
        len: usize,
        /// The most that is allowed.
        max: usize,
    },
    /// The text contained a character that is not allowed.
    #[error("{kind} contains {ch:?}, which is not allowed; use only {allowed}")]
    InvalidChar {
        /// Which identifier.
        kind: &'static str,
        /// The first character that is not allowed.
        ch: char,
        /// The characters that are allowed, for a person.
        allowed: &'static str,
    },
    /// The text started with `-`.
    #[error("{kind} must not start with '-'")]
    LeadingHyphen {
        /// Which identifier.
        kind: &'static str,
    },
    /// The text was `.` or `..`, which would be dangerous in a path.
    #[error("{kind} must not be \".\" or \"..\"")]
    Reserved {
        /// Which identifier.
        kind: &'static str,
    },
    /// The text did not have the required shape.
    #[error("{kind} is not well formed; expected {expected}")]
    Malformed {
        /// Which identifier.
        kind: &'static str,
        /// The required shape, for a person.
        expected: &'static str,
    },
}

/// Checks length and alphabet; shared by the string identifiers.
fn check_chars(
    kind: &'static str,
    s: &str,
    max: usize,
    allowed_desc: &'static str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    let len = s.chars().count();
    if len > max {
        return Err(IdError::TooLong { kind, len, max });
    }
    if let Some(ch) = s.chars().find(|&c| !allowed(c)) {
        return Err(IdError::InvalidChar { kind, ch, allowed: allowed_desc });
    }
    Ok(())
}

/// Implements the traits shared by the string identifiers, given `fn parse(&str) -> Result<Self, IdError>`.
macro_rules! string_id_traits {
    ($ty:ident) => {
        impl $ty {
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $ty {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// Implements the traits shared by the UUID identifiers.
macro_rules! uuid_id {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(Uuid);

        impl $ty {
            /// A new random (version 4) identifier.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            /// Wraps an existing UUID, for example one read back from the store.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// Parses the hyphenated 36-character form (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits in
            /// either case). Other UUID spellings (braced, URN, without hyphens) are refused so that every id
            /// has exactly one text form.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let malformed = IdError::Malformed {
                    kind: $kind,
                    expected: "a UUID like 123e4567-e89b-12d3-a456-426614174000",
                };
                if s.is_empty() {
                    return Err(IdError::Empty { kind: $kind });
                }
                if s.len() != 36 {
                    return Err(malformed);
                }
                Uuid::try_parse(s).map(Self).map_err(|_| malformed)
            }
        }

        impl fmt::Display for $ty {
            /// The hyphenated lowercase form.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $ty {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }

        impl From<$ty> for String {
            fn from(id: $ty) -> String {
                id.to_string()
            }
        }

        impl From<Uuid> for $ty {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }
    };
}

/// Who a person is: the `sub` claim of their token.
///
/// 1 to 128 characters of `A-Z a-z 0-9 . _ @ -` (so e-mail addresses fit), and not `.` or `..`. It never
/// contains `/`, whitespace or anything outside ASCII, so it is safe in paths and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// The most characters a user id may have.
    pub const MAX_LEN: usize = 128;

    /// Validates `s` as a user id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "user id";
        check_chars(KIND, s, Self::MAX_LEN, "letters A-Z and a-z, digits, '.', '_', '@' and '-'", |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')
        })?;
        if s == "." || s == ".." {
            return Err(IdError::Reserved { kind: KIND });
        }
        Ok(Self(s.to_owned()))
    }
}
string_id_traits!(UserId);

/// Which exam: the `id` in an exam's `exam.toml` and the name of its directory.
///
/// 1 to 64 characters of `a-z 0-9 -`, not starting with `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ExamId(String);

impl ExamId {
    /// The most characters an exam id may have.
    pub const MAX_LEN: usize = 64;

    /// Validates `s` as an exam id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "exam id";
        check_chars(KIND, s, Self::MAX_LEN, "lowercase letters a-z, digits and '-'", |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        })?;
        if s.starts_with('-') {
            return Err(IdError::LeadingHyphen { kind: KIND });
        }
        Ok(Self(s.to_owned()))
    }
}
string_id_traits!(ExamId);

uuid_id!(
    /// One candidate's attempt at one exam: the `exam_session_id`, and the `{id}` in `/api/v1/sessions/{id}`.
    ExamSessionId,
    "session id"
);

uuid_id!(
    /// One isolated Linux environment: the `execution_environment_id`. See [`EnvironmentId::short`] for the
    /// form used in hostnames and cgroup names.
    EnvironmentId,
    "environment id"
);

impl EnvironmentId {
    /// The first 12 hex digits of the id, without hyphens, in lowercase: for hostnames, cgroup names and
    /// other places where the full id is too long. Unique enough within one host, not globally.
    pub fn short(&self) -> String {
        let mut s = self.0.simple().to_string();
        s.truncate(12);
        s
    }
}

/// An id that ties an error a person sees to the log entries about it: `inc-` followed by 16 lowercase hex
/// digits, short enough to read out over the phone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IncidentId(String);

impl IncidentId {
    const PREFIX: &'static str = "inc-";
    const HEX_LEN: usize = 16;

    /// A new random incident id (uses a version 4 UUID's randomness).
    pub fn new_v4() -> Self {
        // Truncation is intended: the low 64 bits of a v4 UUID hold 62 random bits.
        Self::from_u64(Uuid::new_v4().as_u128() as u64)
    }

    /// The incident id for a given number; deterministic, for tests and replays.
    pub fn from_u64(n: u64) -> Self {
        Self(format!("{}{n:016x}", Self::PREFIX))
    }

    /// Validates `s` as an incident id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        const KIND: &str = "incident id";
        if s.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        let ok = s.len() == Self::PREFIX.len() + Self::HEX_LEN
            && s.starts_with(Self::PREFIX)
            && s[Self::PREFIX.len()..].chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !ok {
            return Err(IdError::Malformed { kind: KIND, expected: "inc- followed by 16 lowercase hex digits" });
        }
        Ok(Self(s.to_owned()))
    }
}
string_id_traits!(IncidentId);

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs that no string identifier may accept.
    const BAD_COMMON: &[&str] = &[
        "",
        "../x",
        "a/b",
        "a\\b",
        " a",
        "a ",
        "a b",
        "a\tb",
        "a\nb",
        "a\0b",
        "é",
        "ユーザー",
        "a\u{200b}b",
        "a%2fb",
        "a:b",
        "a;b",
        "$(x)",
    ];

    #[test]
    fn user_id_accepts_good_ids() {
        for s in ["alice", "Alice.Smith", "alice@example.org", "a_b-c.d", "0", "...", ".hidden", "-dash"] {
            let id = UserId::parse(s).unwrap();
            assert_eq!(id.as_str(), s);
            assert_eq!(id.to_string(), s);
            assert_eq!(s.parse::<UserId>().unwrap(), id);
        }
        let max = "a".repeat(UserId::MAX_LEN);
        assert!(UserId::parse(&max).is_ok());
    }

    #[test]
    fn user_id_rejects_bad_ids() {
        for s in BAD_COMMON {
            assert!(UserId::parse(s).is_err(), "{s:?} was accepted");
        }
        let long = "a".repeat(UserId::MAX_LEN + 1);
        assert_eq!(UserId::parse(&long), Err(IdError::TooLong { kind: "user id", len: 129, max: 128 }));
        assert_eq!(UserId::parse(".."), Err(IdError::Reserved { kind: "user id" }));
        assert_eq!(UserId::parse("."), Err(IdError::Reserved { kind: "user id" }));
        assert_eq!(UserId::parse(""), Err(IdError::Empty { kind: "user id" }));
        assert!(matches!(UserId::parse("../x"), Err(IdError::InvalidChar { ch: '/', .. })));
    }

    #[test]
    fn exam_id_accepts_good_ids() {
        for s in ["linux-basics", "k8s-101", "a", "0", "trailing-"] {
            assert_eq!(ExamId::parse(s).unwrap().as_str(), s);
        }
        assert!(ExamId::parse(&"a".repeat(ExamId::MAX_LEN)).is_ok());
    }

    #[test]
    fn exam_id_rejects_bad_ids() {
        for s in BAD_COMMON {
            assert!(ExamId::parse(s).is_err(), "{s:?} was accepted");
        }
        for s in ["Linux", "a_b", "a.b", "..", ".", "a@b"] {
            assert!(ExamId::parse(s).is_err(), "{s:?} was accepted");
        }
        assert_eq!(ExamId::parse("-x"), Err(IdError::LeadingHyphen { kind: "exam id" }));
        assert!(matches!(ExamId::parse(&"a".repeat(ExamId::MAX_LEN + 1)), Err(IdError::TooLong { .. })));
    }

    #[test]
    fn uuid_ids_round_trip() {
        let s = ExamSessionId::new_v4();
        assert_eq!(ExamSessionId::parse(&s.to_string()).unwrap(), s);
        assert_eq!(s.to_string().len(), 36);
        let e = EnvironmentId::new_v4();
        assert_eq!(e.to_string().parse::<EnvironmentId>().unwrap(), e);
        // Uppercase hex is the same id.
        let upper = s.to_string().to_uppercase();
        assert_eq!(ExamSessionId::parse(&upper).unwrap(), s);
        // Display is always lowercase.
        assert_eq!(ExamSessionId::parse(&upper).unwrap().to_string(), s.to_string());
    }

    #[test]
    fn uuid_ids_reject_bad_input() {
        let good = "123e4567-e89b-12d3-a456-426614174000";
        assert!(ExamSessionId::parse(good).is_ok());
        for s in [
            "",
            "123e4567e89b12d3a456426614174000",
            "{123e4567-e89b-12d3-a456-426614174000}",
            "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "123e4567-e89b-12d3-a456-4266141740001",
            " 123e4567-e89b-12d3-a456-42661417400",
            "../../../../etc/passwd/../../../x/yz",
            "123e4567-e89b-12d3-a456-4266141740é",
            "not-a-uuid",
        ] {
            assert!(ExamSessionId::parse(s).is_err(), "{s:?} was accepted");
            assert!(EnvironmentId::parse(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn environment_short_is_12_hex() {
        let e = EnvironmentId::parse("123E4567-e89b-12d3-a456-426614174000").unwrap();
        assert_eq!(e.short(), "123e4567e89b");
        let r = EnvironmentId::new_v4().short();
        assert_eq!(r.len(), 12);
        assert!(r.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn incident_ids() {
        let i = IncidentId::from_u64(0xabc);
        assert_eq!(i.as_str(), "inc-0000000000000abc");
        assert_eq!(IncidentId::parse(i.as_str()).unwrap(), i);
        let r = IncidentId::new_v4();
        assert_eq!(r.as_str().parse::<IncidentId>().unwrap(), r);
        for s in [
            "",
            "inc-",
            "inc-0000000000000ABC",
            "inc-0000000000000abcd",
            "INC-0000000000000abc",
            "inc-000000000000000g",
            "x",
        ] {
            assert!(IncidentId::parse(s).is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn serde_is_transparent_and_validating() {
        let u = UserId::parse("alice@example.org").unwrap();
        assert_eq!(serde_json::to_string(&u).unwrap(), "\"alice@example.org\"");
        assert_eq!(serde_json::from_str::<UserId>("\"alice@example.org\"").unwrap(), u);
        assert!(serde_json::from_str::<UserId>("\"../x\"").is_err());
        assert!(serde_json::from_str::<ExamId>("\"Bad\"").is_err());

        let s = ExamSessionId::new_v4();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, format!("\"{s}\""));
        assert_eq!(serde_json::from_str::<ExamSessionId>(&json).unwrap(), s);
        assert!(serde_json::from_str::<ExamSessionId>("\"nope\"").is_err());

        let i = IncidentId::from_u64(1);
        assert_eq!(serde_json::to_string(&i).unwrap(), "\"inc-0000000000000001\"");
        assert!(serde_json::from_str::<IncidentId>("\"inc-1\"").is_err());
    }

    #[test]
    fn error_messages_are_for_people() {
        let e = UserId::parse("a b").unwrap_err();
        assert_eq!(
            e.to_string(),
            "user id contains ' ', which is not allowed; use only letters A-Z and a-z, digits, '.', '_', '@' and '-'"
        );
        let e = ExamSessionId::parse("x").unwrap_err();
        assert!(e.to_string().starts_with("session id is not well formed"));
    }
}
