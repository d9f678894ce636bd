//! The metrics the service records (Prometheus names; exported by the api's `/metrics`).

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
