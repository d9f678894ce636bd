//! The container shim as PID 1 of fresh pid, network and mount namespaces, driven through the runtime's own protocol
//! client from outside, as the Docker runtime drives it. Needs root (namespaces) and util-linux; no Docker.

mod attacks;
mod commands;
mod harness;
mod lifecycle;
mod terminals;
