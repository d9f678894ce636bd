//! Docker backend tests (issue 14), against a test dockerd of their own (dockerd.rs).

#[allow(dead_code, clippy::zombie_processes)]
mod dockerd;
