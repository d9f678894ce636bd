//! Capability set for candidate processes. (Being written by a helper.)
