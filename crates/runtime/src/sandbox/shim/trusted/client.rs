//! `examroom-run PROGRAM [ARGUMENT...]`, the helper that check scripts call to run a program of the candidate's.
//!
//! It runs inside the check (as the check's uid, under its filter), sends the grader one request over
//! `/examroom/run.sock` with its own standard input, output and error attached, and waits: the program reads and writes
//! those descriptors directly, in its throwaway copy of the environment. It exits with the program's status (128 + the
//! signal for a killed program, as shells do), or 125 when the program could not be run at all. If the helper is
//! killed (a `timeout` in the check), the grader kills the program.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::run::{Reply, Request, MAX_REQUEST};
use crate::sandbox::sys;

/// Where the grader listens, inside the check's view.
pub(crate) const SOCKET: &str = "/examroom/run.sock";

/// The helper's `main`. Returns the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = match std::env::args_os().skip(1).map(|a| a.into_string()).collect::<Result<_, _>>() {
        Ok(a) => a,
        Err(_) => return fail("arguments must be valid UTF-8"),
    };
    if args.is_empty() || args[0] == "--help" || args[0] == "-h" {
        eprintln!(
            "usage: examroom-run PROGRAM [ARGUMENT...]\n\nRuns a program of the candidate's in a throwaway copy of \
             their environment, with this command's standard input, output and error and the check's /tmp, and exits \
             with its status. Only available to checks during grading."
        );
        return if args.is_empty() { 125 } else { 0 };
    }
    let env: Vec<(String, String)> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    let cwd = std::env::current_dir().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "/".into());
    let req = Request { argv: args, env, cwd };
    let body = match serde_json::to_vec(&req) {
        Ok(b) if b.len() <= MAX_REQUEST => b,
        Ok(_) => return fail("the arguments and environment are too large (128 KiB at most)"),
        Err(e) => return fail(&e.to_string()),
    };
    let sock = match connect() {
        Ok(s) => s,
        Err(e) => {
            return fail(&format!("cannot reach the grader at {SOCKET} ({e}); examroom-run works only in checks"))
        }
    };
    if let Err(e) = sys::send_with_fds(sock.as_raw_fd(), &body, &[0, 1, 2]) {
        return fail(&format!("sending the request: {e}"));
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sys::recv_with_fds(sock.as_raw_fd(), &mut buf) {
            Ok(Some((n, _))) => {
                return match serde_json::from_slice::<Reply>(&buf[..n]) {
                    Ok(Reply::Exited { code }) => code,
                    Ok(Reply::Refused { error }) => fail(&error),
                    Err(e) => fail(&format!("bad answer from the grader: {e}")),
                }
            }
            Ok(None) => return fail("the grader went away before the program ended"),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return fail(&format!("waiting for the program: {e}")),
        }
    }
}

fn fail(msg: &str) -> i32 {
    eprintln!("examroom-run: {msg}");
    125
}

fn connect() -> io::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).map_err(io::Error::from)?;
    let addr = UnixAddr::new(SOCKET).map_err(io::Error::from)?;
    connect(s.as_raw_fd(), &addr).map_err(io::Error::from)?;
    // SAFETY: re-wrapping the descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(s)) })
}
