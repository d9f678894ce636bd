//! The metrics the service records (Prometheus names; exported by the api's `/metrics`), and their HELP text.

use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Gauge: sessions by `state`.
pub const SESSIONS: &str = "examroom_sessions";
/// Histogram (seconds): from the start request to `ready`.
pub const START_LATENCY: &str = "examroom_session_start_seconds";
/// Counter: failures by `code`.
pub const FAILURES: &str = "examroom_session_failures_total";
/// Gauge: orphan environments found by the last reconcile.
pub const ORPHANS: &str = "examroom_orphan_environments";
/// Counter: orphan environments destroyed.
pub const ORPHANS_DESTROYED: &str = "examroom_orphans_destroyed_total";
/// Histogram (seconds): one reconcile pass.
pub const RECONCILE_DURATION: &str = "examroom_reconcile_seconds";
/// Histogram (seconds): from the end request to the verified release.
pub const RELEASE_LATENCY: &str = "examroom_session_release_seconds";
/// Gauge (bytes): the memory limits of live sessions (admission).
pub const ADMITTED_MEMORY: &str = "examroom_admitted_memory_bytes";
/// Gauge (bytes): the memory budget live sessions must stay within.
pub const MEMORY_BUDGET: &str = "examroom_memory_budget_bytes";
/// Counter: creates refused by admission, by `reason` (`memory`).
pub const ADMISSION_REFUSALS: &str = "examroom_admission_refusals_total";
/// Counter: creates refused by `reason` (`attempts`: none left; `rate`: too many in a minute).
pub const CREATES_REFUSED: &str = "examroom_session_creates_refused_total";

/// Gives every metric above its HELP text and unit. Call it after the recorder is installed.
pub fn describe() {
    describe_gauge!(SESSIONS, Unit::Count, "Exam sessions in each state.");
    describe_histogram!(START_LATENCY, Unit::Seconds, "Time from a session's start request until it is ready.");
    describe_counter!(FAILURES, Unit::Count, "Sessions that failed, by failure code.");
    describe_gauge!(ORPHANS, Unit::Count, "Environments that no live session owns, found by the last reconcile pass.");
    describe_counter!(ORPHANS_DESTROYED, Unit::Count, "Orphan environments the reconciler destroyed.");
    describe_histogram!(RECONCILE_DURATION, Unit::Seconds, "Time one reconcile pass took.");
    describe_histogram!(
        RELEASE_LATENCY,
        Unit::Seconds,
        "Time from a session's end until its environment's release was verified."
    );
    describe_gauge!(ADMITTED_MEMORY, Unit::Bytes, "The memory limits of live sessions (admission).");
    describe_gauge!(MEMORY_BUDGET, Unit::Bytes, "The memory budget live sessions must stay within.");
    describe_counter!(ADMISSION_REFUSALS, Unit::Count, "Creates refused by admission, by reason.");
    describe_counter!(CREATES_REFUSED, Unit::Count, "Creates refused: no attempt left, or too many in a minute.");
}
