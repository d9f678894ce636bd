//! cgroups: v1 hybrid and pure v2 behind an OS trait. (Being written by a helper.)
