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

/// Gauge: pooled environments by `exam` and `state` (`ready`, `filling`).
pub const POOL_ENVIRONMENTS: &str = "examroom_pool_environments";
/// Gauge: how many pooled environments each `exam`'s pool aims for now (its size plus announced candidates).
pub const POOL_TARGET: &str = "examroom_pool_target";
/// Counter: sessions that took a pooled environment, by `exam`.
pub const POOL_CLAIMS: &str = "examroom_pool_claims_total";
/// Counter: sessions of an exam with a pool that did not take a pooled environment, by `exam` and `reason` (`empty`:
/// none was ready; `unusable`: the one taken no longer answered, so a new one was made).
pub const POOL_MISSES: &str = "examroom_pool_misses_total";
/// Counter: pooled environments made, by `exam` and `outcome` (`ready`, `failed`): the fill rate.
pub const POOL_FILLS: &str = "examroom_pool_fills_total";
/// Histogram (seconds): making and setting up one pooled environment, by `exam`.
pub const POOL_FILL_DURATION: &str = "examroom_pool_fill_seconds";
/// Counter: pooled environments destroyed unclaimed, by `exam` and `reason` (`expired`, `exam_changed`, `lost`,
/// `evicted`, `surplus`, `abandoned`).
pub const POOL_RETIRED: &str = "examroom_pool_retired_total";
/// Gauge: environments that the last reconcile pass found held by pools (neither a session's nor orphans).
pub const RECONCILE_POOLED: &str = "examroom_reconcile_pooled_environments";

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
    describe_gauge!(POOL_ENVIRONMENTS, Unit::Count, "Pooled environments, by exam and state (ready, filling).");
    describe_gauge!(POOL_TARGET, Unit::Count, "Pooled environments each exam's pool aims for now.");
    describe_counter!(POOL_CLAIMS, Unit::Count, "Sessions that took a pooled environment, by exam.");
    describe_counter!(
        POOL_MISSES,
        Unit::Count,
        "Sessions of an exam with a pool that did not take a pooled environment, by exam and reason."
    );
    describe_counter!(POOL_FILLS, Unit::Count, "Pooled environments made, by exam and outcome (ready, failed).");
    describe_histogram!(POOL_FILL_DURATION, Unit::Seconds, "Time to make and set up one pooled environment.");
    describe_counter!(POOL_RETIRED, Unit::Count, "Pooled environments destroyed unclaimed, by exam and reason.");
    describe_gauge!(
        RECONCILE_POOLED,
        Unit::Count,
        "Environments the last reconcile pass found held by pools (not orphans)."
    );
}
