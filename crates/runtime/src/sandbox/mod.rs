pub mod caps;
pub mod cgroup;
pub mod seccomp;
