//! # examroom-sessions
//!
//! The lifecycle driver: exam sessions from the candidate's start to the verified release of their environment.
//!
//! # Layout
//! - [`service`]: [`SessionService`], the one place that changes sessions. Every change is a guarded transition
//!   (the core's `transition`) stored with its event in one transaction, then published to subscribers (the status
//!   stream).
//! - [`admission`]: admission by memory: the memory limits of live sessions stay within the host's budget.
//! - [`provision`]: the background provisioning of a new session, bounded by the exam's `provisioning_timeout`.
//! - [`ending`]: `terminating` (access stops, teardown retried until verified) and `failed`.
//! - [`timers`]: the deadline and the start grace, enforced by the server's own clock.
//! - [`reconcile`]: at start-up and periodically, environments and sessions are made to agree.
//! - [`clock`]: the service's clock (wall time for storage, tokio time for waiting, so tests can pause it).
//! - [`metrics`]: the names of the metrics the service records, and their HELP text.
//! - [`attempts`]: attempts at an exam, proctors' grants of more, and the per-candidate create rate.
//! - [`versions`]: the catalog now and the exam versions live sessions run on (a reload keeps them).
//! - [`pool`]: warm pools: environments made and set up ahead of demand, claimed by candidates' starts.
//! - [`workspace`]: the candidate's flags, visited tasks, notepad and terminals, kept on the server.
//! - `signins`: browser sign-ins in the store (the api crate makes and checks them).
//!
//! The service owns no HTTP: the `api` crate translates requests into calls here.

pub mod admission;
pub mod attempts;
pub mod clock;
pub mod ending;
pub mod metrics;
pub mod pool;
pub mod provision;
pub mod reconcile;
mod replicas;
pub mod service;
mod signins;
pub mod timers;
pub mod versions;
pub mod workspace;

pub use attempts::AttemptsStatus;
pub use clock::Clock;
pub use pool::{PoolSettings, PoolStatus, PoolsOverview};
pub use reconcile::ReconcileReport;
pub use service::{Caller, ServiceConfig, SessionService};
pub use versions::ReloadReport;
pub use workspace::{Terminals, WorkspaceChange};
