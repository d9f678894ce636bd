//! Seccomp allowlist for candidate processes. (Being written by a helper.)
