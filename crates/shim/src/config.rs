//! The shim's configuration: environment variables named `EXAMROOM_SHIM_*`, taken out of the environment that the
//! candidate's processes get. Everything else in the shim's environment (the image's `Env`) is the candidate's.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// The prefix of every variable meant for the shim; none of them reaches a child.
pub const PREFIX: &str = "EXAMROOM_SHIM_";
/// The abstract unix socket's name (without the leading NUL).
pub const SOCKET_VAR: &str = "EXAMROOM_SHIM_SOCKET";
/// The main terminal's columns.
pub const COLS_VAR: &str = "EXAMROOM_SHIM_COLS";
/// The main terminal's rows.
pub const ROWS_VAR: &str = "EXAMROOM_SHIM_ROWS";
/// The socket's name when none is given.
pub const DEFAULT_SOCKET: &str = "examroom-shim";
/// The main terminal's size when none is given.
pub const DEFAULT_COLS: u16 = 80;
/// The main terminal's size when none is given.
pub const DEFAULT_ROWS: u16 = 24;
/// An abstract name fits in `sun_path` after its leading NUL.
const MAX_SOCKET_NAME: usize = 107;

/// What the shim was told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The abstract socket's name.
    pub socket: String,
    /// The main terminal's size.
    pub cols: u16,
    /// The main terminal's size.
    pub rows: u16,
    /// The candidate's environment: the shim's own, without any `EXAMROOM_SHIM_*`.
    pub env: Vec<(OsString, OsString)>,
}

impl Config {
    /// Reads the configuration from the process environment and removes every `EXAMROOM_SHIM_*` variable from it.
    /// Call it while the process has a single thread (the environment is changed).
    pub fn from_process_env() -> Result<Config, String> {
        let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        scrub_initial_environment();
        for (k, _) in &vars {
            if k.as_bytes().starts_with(PREFIX.as_bytes()) {
                std::env::remove_var(k);
            }
        }
        Config::parse(vars)
    }

    /// Parses an environment (pure).
    pub fn parse(vars: Vec<(OsString, OsString)>) -> Result<Config, String> {
        let get = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let socket = match get(SOCKET_VAR) {
            None => DEFAULT_SOCKET.to_string(),
            Some(v) => {
                let s = v.into_string().map_err(|v| {
                    format!("{SOCKET_VAR} must be UTF-8 text, got {v:?}; set a plain name such as examroom-shim")
                })?;
                if s.is_empty() || s.len() > MAX_SOCKET_NAME || s.contains('\0') {
                    return Err(format!(
                        "{SOCKET_VAR} must be 1 to {MAX_SOCKET_NAME} bytes without NUL, got {s:?}; set a plain name \
                         such as examroom-shim"
                    ));
                }
                s
            }
        };
        let size = |name: &str, default: u16| -> Result<u16, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .to_str()
                    .and_then(|s| s.trim().parse::<u16>().ok())
                    .map(|n| n.clamp(2, 1000))
                    .ok_or_else(|| format!("{name} must be a number of cells (2 to 1000), got {v:?}")),
            }
        };
        let cols = size(COLS_VAR, DEFAULT_COLS)?;
        let rows = size(ROWS_VAR, DEFAULT_ROWS)?;
        let env = vars.into_iter().filter(|(k, _)| !k.as_bytes().starts_with(PREFIX.as_bytes())).collect();
        Ok(Config { socket, cols, rows, env })
    }

    /// The value of one of the candidate's variables.
    pub fn var(&self, name: &str) -> Option<&OsStr> {
        self.env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_os_str())
    }

    /// The environment of a terminal's shell: the candidate's, with `TERM` for the browser's terminal and, where the
    /// image sets none, the variables a login shell expects (as the sandbox backend's shells have them).
    pub fn shell_env(&self, shell: &str, root: bool) -> Vec<(OsString, OsString)> {
        let mut env: Vec<(OsString, OsString)> = self.env.iter().filter(|(k, _)| k != "TERM").cloned().collect();
        env.push(("TERM".into(), "xterm-256color".into()));
        let mut defaults = vec![("HOME", "/root"), ("SHELL", shell), ("LANG", "C.UTF-8"), ("PATH", DEFAULT_PATH)];
        if root {
            defaults.extend([("USER", "root"), ("LOGNAME", "root")]);
        }
        for (k, v) in defaults {
            if self.var(k).is_none() {
                env.push((k.into(), v.into()));
            }
        }
        env
    }
}

/// Overwrites (with NUL bytes) every `EXAMROOM_SHIM_*` string of the environment block the kernel gave this process,
/// which is what `/proc/<pid>/environ` shows. Being not dumpable is not enough to hide it: a process of the same uid
/// without `CAP_SYS_PTRACE` can still read it on current kernels (6.18 measured), though not `mem` or `fd/`.
/// Call it before anything changes the environment (the strings must still be the kernel's).
fn scrub_initial_environment() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: single-threaded start-up; `environ` is a NULL-terminated array of NUL-terminated strings, which live in
    // writable memory (the initial stack); each is overwritten within its own length.
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            let s = *p;
            let len = libc::strlen(s);
            if std::slice::from_raw_parts(s as *const u8, len).starts_with(PREFIX.as_bytes()) {
                std::ptr::write_bytes(s, 0, len);
            }
            p = p.add(1);
        }
    }
}

/// `PATH` when a command's environment has none (the sandbox backend's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter().map(|(k, v)| (OsString::from(k), OsString::from(v))).collect()
    }

    #[test]
    fn defaults_and_the_candidates_environment() {
        let c = Config::parse(vars(&[("PATH", "/x"), ("EXAMROOM_SHIM_OTHER", "1"), ("LANG", "de_DE.UTF-8")])).unwrap();
        assert_eq!((c.socket.as_str(), c.cols, c.rows), (DEFAULT_SOCKET, 80, 24));
        assert_eq!(c.env, vars(&[("PATH", "/x"), ("LANG", "de_DE.UTF-8")]), "no EXAMROOM_SHIM_* reaches a child");
        let shell = c.shell_env("/bin/bash", true);
        let get = |k: &str| shell.iter().find(|(n, _)| n == k).map(|(_, v)| v.to_str().unwrap().to_string());
        assert_eq!(get("PATH").as_deref(), Some("/x"), "the image's PATH wins");
        assert_eq!(get("LANG").as_deref(), Some("de_DE.UTF-8"));
        assert_eq!(get("TERM").as_deref(), Some("xterm-256color"));
        assert_eq!(get("HOME").as_deref(), Some("/root"));
        assert_eq!(get("USER").as_deref(), Some("root"));
        assert_eq!(shell.iter().filter(|(k, _)| k == "TERM").count(), 1);
    }

    #[test]
    fn settings_are_read_and_checked() {
        let c = Config::parse(vars(&[(SOCKET_VAR, "s1"), (COLS_VAR, "120"), (ROWS_VAR, "5000")])).unwrap();
        assert_eq!((c.socket.as_str(), c.cols, c.rows), ("s1", 120, 1000), "sizes are clamped as a resize is");
        assert!(c.env.is_empty());
        let e = Config::parse(vars(&[(COLS_VAR, "wide")])).unwrap_err();
        assert!(e.contains(COLS_VAR) && e.contains("wide"), "{e}");
        assert!(Config::parse(vars(&[(SOCKET_VAR, "")])).is_err());
        assert!(Config::parse(vars(&[(SOCKET_VAR, &"x".repeat(108))])).is_err());
    }
}
