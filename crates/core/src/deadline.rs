//! Time as pure arithmetic: the exam clock ([`Deadline`]) and durations written by people
//! ([`parse_duration`], [`format_duration`]).
//!
//! Nothing here reads a clock. Times are milliseconds since the Unix epoch, passed in by the caller, so the
//! server's clock is the only one that matters and tests can use any instant.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How long provisioning may take when an exam does not say (`provisioning_timeout`).
pub const DEFAULT_PROVISIONING_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a `ready` session waits for the candidate to start when an exam does not say (`start_grace`).
pub const DEFAULT_START_GRACE: Duration = Duration::from_secs(10 * 60);

/// A clock that started at `started_at_unix_ms` and runs for `duration_ms`: the exam deadline, and equally
/// the start grace period (started when the session became `ready`) or a provisioning timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Deadline {
    /// When the clock started, in milliseconds since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// How long it runs, in milliseconds.
    pub duration_ms: u64,
}

impl Deadline {
    /// A clock that started at `started_at_unix_ms` and runs for `duration_ms`.
    pub const fn new(started_at_unix_ms: u64, duration_ms: u64) -> Self {
        Self { started_at_unix_ms, duration_ms }
    }

    /// A clock that started at `started_at_unix_ms` and runs for `duration` (whole milliseconds; a duration
    /// beyond `u64::MAX` milliseconds is treated as `u64::MAX`).
    pub fn from_duration(started_at_unix_ms: u64, duration: Duration) -> Self {
        let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self::new(started_at_unix_ms, duration_ms)
    }

    /// When the clock is due, in milliseconds since the Unix epoch (saturating at `u64::MAX`).
    pub const fn due_at_unix_ms(&self) -> u64 {
        self.started_at_unix_ms.saturating_add(self.duration_ms)
    }

    /// Milliseconds left at `now_unix_ms`: never negative (0 once due), and never more than the duration,
    /// even if `now_unix_ms` is before the start.
    pub const fn remaining_ms(&self, now_unix_ms: u64) -> u64 {
        let left = self.due_at_unix_ms().saturating_sub(now_unix_ms);
        if left < self.duration_ms {
            left
        } else {
            self.duration_ms
        }
    }

    /// Whole seconds left at `now_unix_ms`, rounded up: it shows 0 exactly when [`Deadline::is_due`], so a
    /// running clock never shows 0 while time is left. Never negative.
    pub const fn remaining_seconds(&self, now_unix_ms: u64) -> u64 {
        self.remaining_ms(now_unix_ms).div_ceil(1000)
    }

    /// Whether the clock has run out at `now_unix_ms`: no time is left. The due instant itself counts as
    /// due, and a clock of zero length is always due.
    pub const fn is_due(&self, now_unix_ms: u64) -> bool {
        self.remaining_ms(now_unix_ms) == 0
    }
}

/// Why a duration was refused. Each message quotes the input (shortened if long) and says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was written.
    #[error("the duration is empty; write it like 90m, 45s or 1h30m")]
    Empty,
    /// The duration started with `-`.
    #[error("duration \"{input}\" is negative; a duration must be greater than zero")]
    Negative {
        /// The input, shortened if long.
        input: String,
    },
    /// The duration added up to zero.
    #[error("duration \"{input}\" is zero; a duration must be greater than zero")]
    Zero {
        /// The input, shortened if long.
        input: String,
    },
    /// A number had no unit after it.
    #[error("duration \"{input}\" has no unit after {number}; write {number}s, {number}m or {number}h")]
    MissingUnit {
        /// The input, shortened if long.
        input: String,
        /// The number without a unit.
        number: String,
    },
    /// A unit had no number before it.
    #[error("duration \"{input}\" has the unit \"{unit}\" without a number before it; write it like 2{unit}")]
    MissingNumber {
        /// The input, shortened if long.
        input: String,
        /// The unit without a number.
        unit: String,
    },
    /// A unit that is not `h`, `m`, `s` or `ms`.
    #[error("duration \"{input}\" uses the unknown unit \"{unit}\"; use h, m, s or ms (lowercase), as in 1h30m")]
    UnknownUnit {
        /// The input, shortened if long.
        input: String,
        /// The unit that was not recognized.
        unit: String,
    },
    /// A number had a fraction, such as `1.5h`.
    #[error("duration \"{input}\" has a fraction; use whole numbers and smaller units, as in 1h30m")]
    Fractional {
        /// The input, shortened if long.
        input: String,
    },
    /// There was whitespace between the parts.
    #[error("duration \"{input}\" contains a space; write it without spaces, as in 1h30m")]
    Whitespace {
        /// The input, shortened if long.
        input: String,
    },
    /// A character that has no place in a duration.
    #[error("duration \"{input}\" contains {ch:?}; write it like 90m, 45s or 1h30m")]
    InvalidCharacter {
        /// The input, shortened if long.
        input: String,
        /// The first such character.
        ch: char,
    },
    /// Units were not written from largest to smallest, as in `30m1h`.
    #[error("duration \"{input}\" has its units out of order; write them from largest to smallest, as in 1h30m")]
    OutOfOrder {
        /// The input, shortened if long.
        input: String,
    },
    /// A unit appeared twice, as in `1h1h`.
    #[error("duration \"{input}\" uses the unit \"{unit}\" twice; write each unit once, as in 2h or 1h30m")]
    Repeated {
        /// The input, shortened if long.
        input: String,
        /// The repeated unit.
        unit: String,
    },
    /// The duration does not fit in 64 bits of milliseconds.
    #[error("duration \"{input}\" is too large")]
    TooLarge {
        /// The input, shortened if long.
        input: String,
    },
}

/// The input as quoted in messages: at most 40 characters.
fn shown(input: &str) -> String {
    const MAX: usize = 40;
    if input.chars().count() <= MAX {
        input.to_owned()
    } else {
        let mut s: String = input.chars().take(MAX).collect();
        s.push('…');
        s
    }
}

/// Parses a duration as people write it in `exam.toml` or on the command line: one or more parts of a whole
/// number and a unit, units from largest to smallest and each at most once, no spaces inside.
///
/// Units: `h` (hours), `m` (minutes), `s` (seconds), `ms` (milliseconds). Examples: `90m`, `45s`, `2h`,
/// `1h30m`, `1m30s`, `500ms`. Surrounding whitespace is ignored. A negative or zero total, an empty input,
/// a number without a unit, an unknown unit, a fraction and a total beyond `u64::MAX` milliseconds are
/// refused with a [`DurationError`] that says how to write it instead.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let quoted = || shown(s);
    if s.starts_with('-') {
        return Err(DurationError::Negative { input: quoted() });
    }

    let mut total_ms: u64 = 0;
    // Rank of the previous unit: h = 3, m = 2, s = 1, ms = 0.
    let mut last_rank: Option<u8> = None;
    let mut rest = s;
    while let Some(first) = rest.chars().next() {
        let digits_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits_end == 0 {
            return Err(if first.is_whitespace() {
                DurationError::Whitespace { input: quoted() }
            } else if first.is_ascii_alphabetic() {
                let unit_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
                DurationError::MissingNumber { input: quoted(), unit: rest[..unit_end].to_owned() }
            } else if first == '.' || first == ',' {
                DurationError::Fractional { input: quoted() }
            } else {
                DurationError::InvalidCharacter { input: quoted(), ch: first }
            });
        }
        let number = &rest[..digits_end];
        rest = &rest[digits_end..];

        if rest.starts_with(['.', ',']) {
            return Err(DurationError::Fractional { input: quoted() });
        }
        let unit_end = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        if unit.is_empty() {
            return Err(match rest.chars().next() {
                None => DurationError::MissingUnit { input: quoted(), number: number.to_owned() },
                Some(c) if c.is_whitespace() => DurationError::Whitespace { input: quoted() },
                Some(ch) => DurationError::InvalidCharacter { input: quoted(), ch },
            });
        }
        let (rank, ms_per_unit): (u8, u64) = match unit {
            "h" => (3, 3_600_000),
            "m" => (2, 60_000),
            "s" => (1, 1_000),
            "ms" => (0, 1),
            other => return Err(DurationError::UnknownUnit { input: quoted(), unit: shown(other) }),
        };
        match last_rank {
            Some(last) if last == rank => {
                return Err(DurationError::Repeated { input: quoted(), unit: unit.to_owned() })
            }
            Some(last) if last < rank => return Err(DurationError::OutOfOrder { input: quoted() }),
            _ => {}
        }
        last_rank = Some(rank);

        // `number` is all ASCII digits, so parsing can only fail by overflow.
        total_ms = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(ms_per_unit))
            .and_then(|part| total_ms.checked_add(part))
            .ok_or_else(|| DurationError::TooLarge { input: quoted() })?;
    }
    if total_ms == 0 {
        return Err(DurationError::Zero { input: quoted() });
    }
    Ok(Duration::from_millis(total_ms))
}

/// Writes a duration the way [`parse_duration`] reads it, with only the units that are not zero: `1h30m`,
/// `45s`, `1h5s`, `2m500ms`. Zero is `0s`; anything below a millisecond is dropped.
pub fn format_duration(duration: Duration) -> String {
    let mut ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [("h", 3_600_000u128), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let n = ms / size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
        }
        ms %= size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn parses_good_durations() {
        assert_eq!(d("90m"), Duration::from_secs(90 * 60));
        assert_eq!(d("45s"), Duration::from_secs(45));
        assert_eq!(d("2h"), Duration::from_secs(7200));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("1h30m15s"), Duration::from_secs(5415));
        assert_eq!(d("1h15s"), Duration::from_secs(3615));
        assert_eq!(d("1m30s"), Duration::from_secs(90));
        assert_eq!(d("500ms"), Duration::from_millis(500));
        assert_eq!(d("1s500ms"), Duration::from_millis(1500));
        assert_eq!(d("0h30m"), Duration::from_secs(1800));
        assert_eq!(d("007m"), Duration::from_secs(420));
        assert_eq!(d("  10m\n"), Duration::from_secs(600));
        assert_eq!(d("100000h"), Duration::from_secs(360_000_000));
    }

    #[test]
    fn rejects_bad_durations() {
        use DurationError as E;
        type Check = fn(&E) -> bool;
        let cases: &[(&str, Check)] = &[
            ("", |e| matches!(e, E::Empty)),
            ("   ", |e| matches!(e, E::Empty)),
            ("-5m", |e| matches!(e, E::Negative { .. })),
            ("-0s", |e| matches!(e, E::Negative { .. })),
            ("0", |e| matches!(e, E::MissingUnit { .. })),
            ("0s", |e| matches!(e, E::Zero { .. })),
            ("0h0m0s0ms", |e| matches!(e, E::Zero { .. })),
            ("90", |e| matches!(e, E::MissingUnit { .. })),
            ("1h30", |e| matches!(e, E::MissingUnit { .. })),
            ("h", |e| matches!(e, E::MissingNumber { .. })),
            ("1hm", |e| matches!(e, E::UnknownUnit { .. })),
            ("5d", |e| matches!(e, E::UnknownUnit { .. })),
            ("5M", |e| matches!(e, E::UnknownUnit { .. })),
            ("5sec", |e| matches!(e, E::UnknownUnit { .. })),
            ("5us", |e| matches!(e, E::UnknownUnit { .. })),
            ("5µs", |e| matches!(e, E::InvalidCharacter { ch: 'µ', .. })),
            ("1.5h", |e| matches!(e, E::Fractional { .. })),
            ("1,5h", |e| matches!(e, E::Fractional { .. })),
            (".5h", |e| matches!(e, E::Fractional { .. })),
            ("1h 30m", |e| matches!(e, E::Whitespace { .. })),
            ("1 h", |e| matches!(e, E::Whitespace { .. })),
            ("+5m", |e| matches!(e, E::InvalidCharacter { ch: '+', .. })),
            ("5m!", |e| matches!(e, E::InvalidCharacter { ch: '!', .. })),
            ("5m-", |e| matches!(e, E::InvalidCharacter { ch: '-', .. })),
            ("٣m", |e| matches!(e, E::InvalidCharacter { .. })),
            ("30m1h", |e| matches!(e, E::OutOfOrder { .. })),
            ("500ms1s", |e| matches!(e, E::OutOfOrder { .. })),
            ("1h1h", |e| matches!(e, E::Repeated { .. })),
            ("99999999999999999999s", |e| matches!(e, E::TooLarge { .. })),
            ("18446744073709551615s", |e| matches!(e, E::TooLarge { .. })),
            ("5124095576030431h", |e| matches!(e, E::TooLarge { .. })),
        ];
        for (input, ok) in cases {
            match parse_duration(input) {
                Ok(v) => panic!("{input:?} was accepted as {v:?}"),
                Err(e) => assert!(ok(&e), "{input:?} gave the wrong error: {e:?}"),
            }
        }
        // The largest total that fits is accepted; one more millisecond is not.
        assert_eq!(d("18446744073709551615ms"), Duration::from_millis(u64::MAX));
        assert_eq!(d("5124095576030h1551615ms"), Duration::from_millis(u64::MAX));
        assert!(matches!(parse_duration("5124095576030h1551616ms"), Err(DurationError::TooLarge { .. })));
    }

    #[test]
    fn messages_are_for_people() {
        let msg = |s: &str| parse_duration(s).unwrap_err().to_string();
        assert_eq!(msg("90"), "duration \"90\" has no unit after 90; write 90s, 90m or 90h");
        assert_eq!(
            msg("5d"),
            "duration \"5d\" uses the unknown unit \"d\"; use h, m, s or ms (lowercase), as in 1h30m"
        );
        assert_eq!(msg("-5m"), "duration \"-5m\" is negative; a duration must be greater than zero");
        assert_eq!(msg(""), "the duration is empty; write it like 90m, 45s or 1h30m");
        let long = format!("{}x", "1".repeat(100));
        assert!(msg(&long).len() < 200, "{}", msg(&long));
    }

    #[test]
    fn format_round_trips() {
        for s in ["1h30m", "45s", "2h", "1h5s", "2m500ms", "500ms", "1h1m1s1ms"] {
            assert_eq!(format_duration(d(s)), s);
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1ms");
    }

    #[test]
    fn remaining_seconds_rounds_up_and_never_goes_negative() {
        let dl = Deadline::new(1_000_000, 90_000);
        assert_eq!(dl.due_at_unix_ms(), 1_090_000);
        assert_eq!(dl.remaining_seconds(1_000_000), 90);
        assert_eq!(dl.remaining_seconds(1_000_001), 90);
        assert_eq!(dl.remaining_seconds(1_000_999), 90);
        assert_eq!(dl.remaining_seconds(1_001_000), 89);
        assert_eq!(dl.remaining_seconds(1_089_000), 1);
        assert_eq!(dl.remaining_seconds(1_089_999), 1);
        assert_eq!(dl.remaining_seconds(1_090_000), 0);
        assert_eq!(dl.remaining_seconds(1_090_001), 0);
        assert_eq!(dl.remaining_seconds(u64::MAX), 0);
        // Before the start (a clock that stepped back) it never shows more than the duration.
        assert_eq!(dl.remaining_seconds(0), 90);
        assert_eq!(dl.remaining_ms(999_000), 90_000);
    }

    #[test]
    fn zero_is_shown_exactly_when_due() {
        let dl = Deadline::new(5_000, 2_500);
        for now in 0..10_000 {
            assert_eq!(dl.remaining_seconds(now) == 0, dl.is_due(now), "at {now}");
            assert!(dl.remaining_seconds(now) <= 3);
        }
        assert!(!dl.is_due(7_499));
        assert!(dl.is_due(7_500));
    }

    #[test]
    fn saturates_at_the_end_of_time() {
        let dl = Deadline::new(u64::MAX - 10, 1_000);
        assert_eq!(dl.due_at_unix_ms(), u64::MAX);
        assert!(!dl.is_due(u64::MAX - 1));
        assert!(dl.is_due(u64::MAX));
        let dl = Deadline::from_duration(0, Duration::MAX);
        assert_eq!(dl.duration_ms, u64::MAX);
        assert_eq!(Deadline::from_duration(7, Duration::from_secs(2)), Deadline::new(7, 2_000));
    }

    #[test]
    fn zero_duration_is_due_at_once() {
        let dl = Deadline::new(100, 0);
        assert!(dl.is_due(100));
        assert_eq!(dl.remaining_seconds(100), 0);
        assert_eq!(dl.remaining_seconds(50), 0);
        assert!(dl.is_due(50));
    }

    #[test]
    fn defaults() {
        assert_eq!(DEFAULT_PROVISIONING_TIMEOUT, d("60s"));
        assert_eq!(DEFAULT_START_GRACE, d("10m"));
    }
}
