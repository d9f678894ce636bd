//! The Docker Engine backend (issue 14). Placeholder of the `grading` branch: helper "docker" owns this file; the
//! lead merges the two.

mod grading;
mod services;
#[doc(hidden)]
pub mod testing;
