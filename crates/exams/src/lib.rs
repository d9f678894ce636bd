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
//! desktop = false                      # optional, default false: a graphical desktop (VNC in the browser)
//! resolution = "1280x800"              # optional, with desktop = true; from "320x200" to "4096x4096"
//! ports = [8000]                       # optional: ports inside that the owner's browser may open (at most 16)
//! profile = "shell"                    # optional, default "shell"; or "system" (systemd as PID 1: a whole machine)
//! backend = "sandbox"                  # optional, default "sandbox"; or "docker" (issue 14: not on this server yet)
//!
//! [[environment.services]]             # optional: containers beside the environment (the docker backend only)
//! name = "cluster"                     # required: like a task id; the host name it is reached by
//! image = "examroom/k3s:1"             # required: an image reference
//! command = ["k3s", "server"]          # optional: the program and its arguments
//! environment = { K3S_AGENTS = "1" }   # optional: variables (strings)
//! memory = "1G"                        # optional
//! ready_command = ["kubectl", "get", "nodes"]   # optional: exits 0 once it is ready
//! ready_port = 6443                    # optional: accepts TCP connections once it is ready
//!
//! [pool]                               # optional: a warm pool of prepared environments
//! size = 0                             # optional, default 0; environments kept ready, 0 to 1000
//! max_age = "4h"                       # optional, default 4h; from 10s to 168h: older ones are replaced
//!
//! [result]                             # optional
//! show = "checks"                      # optional, default "checks"; or "score" (candidates see only the score)
//!
//! [[tasks]]                            # optional, up to 100, in order
//! id = "make-dir"                      # required: like an exam id; unique in the exam
//! title = "Create a directory"         # required, not blank
//! prompt = "Create `/srv/data`..."     # Markdown; or prompt_file = "tasks/make-dir.md" (exactly one of them)
//! setup = "setup/make-dir.sh"          # optional: run as root while the environment is provisioned
//! setup_at = "prepare"                 # optional, default "prepare"; "claim": when a candidate takes it (pools)
//!
//! [[tasks.checks]]                     # at least 1, up to 50 per task
//! id = "exists"                        # required: like a task id; unique within the task
//! description = "/srv/data exists"     # required, not blank
//! script = "checks/make-dir/exists.sh" # required: passes when it exits 0
//! weight = 2                           # optional, default 1; 1 to 100
//! timeout = "5s"                       # optional, default 10s; from 1s to 5m
//! may_pass_unsolved = "why"            # optional: `exam test` accepts it passing where nothing was done
//! ```
//!
//! A task may also name its reference solution, `solution = "solutions/make-dir.sh"`, which `examroom exam test`
//! runs as the candidate would (a server never runs it, and no candidate sees it), and `tags = ["users"]` (topics). `total_points = 18` at the top
//! level says what the weights add up to; `examroom exam validate` reports a sum that differs.
//!
//! Any other field is an error, so that a typo never passes silently. Scripts and prompt files are paths
//! relative to the exam directory; they are read when the exam is loaded (at most 64 KiB each, UTF-8, never
//! outside the exam directory, symlinks included) and kept in memory, so nothing is read from the directory
//! later. `docs/exams.md` is the guide for exam authors.
//!
//! # Layout
//!
//! - [`definition`]: the validated types, [`Exam`], [`EnvironmentConfig`], [`Task`], [`Check`], [`Script`] and
//!   [`ResultPolicy`], with the defaults and limits.
//! - [`parse`]: the text of one `exam.toml` to an [`Exam`] or to every [`Problem`] in it ([`parse_exam`]),
//!   and the value syntaxes ([`parse_size`], [`parse_cpu`]).
//! - `files` (private): reading the scripts and prompt files that tasks name, safely.
//! - [`catalog`]: a directory of exams ([`Catalog`]), one exam directory read safely ([`load_exam`]), and
//!   [`validate`] for `examroom exam validate DIR`.
//! - [`problem`]: [`Problem`], displayed as `file:line: field: message`.
//! - [`bundle`]: one archive of an exam with a manifest of digests (`exam pack` / `exam install`).
//! - [`ckx`]: importing CK-X labs, with a report of every inconsistency (`exam import ckx`).
//! - [`lint`]: what loads but is wrong (errors) or likely wrong (hints), for `examroom exam validate`.
//!
//! Nothing here panics on bad input, and validation collects every problem it can find rather than
//! stopping at the first.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod bundle;
pub mod catalog;
pub mod ckx;
pub mod definition;
mod files;
pub mod lint;
pub mod parse;
pub mod problem;

pub use catalog::{load_exam, validate, validate_images, Catalog};
pub use definition::{
    Attempts, BaseKind, Check, EnvironmentConfig, Exam, PoolConfig, Resource, ResultPolicy, Script, ServiceSpec,
    SetupAt, Task, BACKEND_DOCKER, BACKEND_SANDBOX, DEFAULT_RESOLUTION, DEFAULT_TERMINALS, DEFAULT_WARNINGS,
    DESKTOP_VNC_PORT, EXAM_FILE, MAX_ATTEMPTS, MAX_EXAM_FILE_BYTES, MAX_POOL_SIZE, MAX_PORTS, MAX_SCRIPT_BYTES,
    MAX_TERMINALS, PROFILE_SHELL, PROFILE_SYSTEM,
};
pub use lint::{lint, lint_exam, Lint, Severity};
pub use parse::{parse_cpu, parse_exam, parse_size};
pub use problem::Problem;
