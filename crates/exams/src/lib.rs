//! The exam catalog: exams defined in `exam.toml` files, checked with problems that name the file, the line
//! and the field.
//!
//! A catalog directory (`exams/` in the repository holds the samples) has one sub-directory per exam, each
//! with an `exam.toml`:
//!
//! ```toml
//! id = "linux-basics"                  # required: 1-64 of a-z 0-9 -, not starting with -
//! title = "Linux basics: files and permissions"   # required, not blank
//! description = "..."                  # required (may be empty)
//! duration = "45m"                     # required: "90m", "45s", "1h30m", ... greater than zero
//! provisioning_timeout = "60s"         # optional, default 60s; from 1s to 10m
//! start_grace = "10m"                  # optional, default 10m; above zero, at most 24h
//!
//! [environment]                        # required
//! base = "host"                        # required: "host", "rootfs:/ABS/PATH" or "image:NAME"
//! memory = "512M"                      # optional, default 512 MiB; 32 MiB to 64 GiB ("1G", "256MiB", 1048576)
//! pids = 256                           # optional, default 512; 16 to 65536
//! cpu = 1                              # optional, default 1 core; 0.05 to 64 cores (1.5 or "1500m")
//! disk = "256M"                        # optional; at least 4 MiB and smaller than memory
//! network = "none"                     # optional; only "none" for now
//! desktop = false                      # optional, default false
//! ```
//!
//! Any other field is an error, so that a typo never passes silently; the top-level `tasks` and `result`
//! are reserved for a later version of the format and ignored for now.
//!
//! # Layout
//!
//! - [`definition`]: the validated types, [`Exam`] and [`EnvironmentConfig`], with the defaults and limits.
//! - [`parse`]: the text of one `exam.toml` to an [`Exam`] or to every [`Problem`] in it ([`parse_exam`]),
//!   and the value syntaxes ([`parse_size`], [`parse_cpu`]).
//! - [`catalog`]: a directory of exams ([`Catalog`]), one exam directory read safely ([`load_exam`]), and
//!   [`validate`] for `examroom exam validate DIR`.
//! - [`problem`]: [`Problem`], displayed as `file:line: field: message`.
//!
//! Nothing here panics on bad input, and validation collects every problem it can find rather than
//! stopping at the first.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod catalog;
pub mod definition;
pub mod parse;
pub mod problem;

pub use catalog::{load_exam, validate, Catalog};
pub use definition::{BaseKind, EnvironmentConfig, Exam, EXAM_FILE, MAX_EXAM_FILE_BYTES};
pub use parse::{parse_cpu, parse_exam, parse_size};
pub use problem::Problem;
