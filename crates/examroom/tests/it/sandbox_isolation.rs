//! Isolation and attack tests (being written by a helper).
