//! Integration tests, in one binary (linking is slow on two cores). They use real namespaces, cgroups and processes,
//! so they run as root; every leak check is scoped to the label of the runtime the test made.

mod admission;
mod api_access;
mod api_clients;
mod api_desktop;
mod api_limits;
mod api_pools;
mod api_results;
mod api_sessions;
mod api_setup;
mod api_terminal;
mod api_workspace;
mod cli;
mod common;
mod docker_engine;
mod docker_sessions;
mod exam_authoring;
mod exams_samples;
mod grading_attacks;
mod images;
mod replicas;
mod resilience;
mod sandbox_desktop;
mod sandbox_isolation;
mod sandbox_lifecycle;
mod sandbox_shell;
mod sandbox_system;
mod server;
mod terminal_flow;
mod tls;
