//! Docker backend tests (issue 14), against a test dockerd of their own (dockerd.rs). Tests that need the static shim
//! (`target/shim/examroom-shim`, `make shim`) skip with a printed reason when it is absent.

#[allow(dead_code, clippy::zombie_processes)]
mod dockerd;

mod confinement;
mod errors;
mod harness;
mod lifecycle;
mod xfs;
