//! Puts the git commit the binary was built from into `EXAMROOM_COMMIT` (shown by `examroom --version`).
//!
//! From `git rev-parse` when the sources are a git checkout; else from `EXAMROOM_COMMIT` in the build's environment
//! (a source tarball's builder may set it); else `unknown`. Cargo runs this again only when HEAD or the branch it
//! points at moves (or that variable changes), not on every edit.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=EXAMROOM_COMMIT");
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(commit) => {
            // HEAD itself (a checkout moves it), the branch it names (a commit moves that) and packed-refs (where a
            // branch may live instead); a worktree's HEAD and the common refs live in different directories.
            let path_of = |name: &str| git(&["rev-parse", "--path-format=absolute", "--git-path", name]);
            let mut watched = vec![path_of("HEAD"), path_of("packed-refs")];
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
                watched.push(path_of(&branch));
            }
            for path in watched.into_iter().flatten() {
                if Path::new(&path).exists() {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            commit
        }
        None => std::env::var("EXAMROOM_COMMIT").ok().filter(|c| !c.trim().is_empty()).unwrap_or("unknown".into()),
    };
    println!("cargo:rustc-env=EXAMROOM_COMMIT={commit}");
}
