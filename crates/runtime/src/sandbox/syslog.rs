//! `/dev/log` in a `shell` environment: a small sink that init holds (a `system` environment has journald). `logger`
//! and every program that calls `syslog(3)` send it datagrams; it appends each to `/var/log/syslog` as a classic
//! syslog daemon does (`Dec  2 08:30:00 exam-… tag: message`). It runs as root of the environment, inside, so it can
//! do nothing the candidate could not; it reads at most [`BATCH`] messages per wake-up, so a flood of log messages
//! cannot keep init from its other work, and a full disk only loses log lines.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Messages read per wake-up.
pub const BATCH: usize = 64;
/// The longest message kept (as rsyslog's default); longer ones are cut.
const MAX_MESSAGE: usize = 8192;
/// Where the lines go.
const LOG_FILE: &str = "/var/log/syslog";

/// The socket at `/dev/log` and the file its messages go to.
pub struct LogSink {
    sock: UnixDatagram,
    out: Option<File>,
    hostname: String,
}

impl LogSink {
    /// Binds `/dev/log` (any user may send to it). Called by init inside the environment's root.
    pub fn open(hostname: &str) -> io::Result<LogSink> {
        let path = Path::new("/dev/log");
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path)?;
        sock.set_nonblocking(true)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(LogSink { sock, out: None, hostname: hostname.to_string() })
    }

    /// What to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Reads what is pending (at most [`BATCH`] messages) and appends it to the log file.
    pub fn drain(&mut self) {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut lines = Vec::new();
        for _ in 0..BATCH {
            match self.sock.recv(&mut buf) {
                Ok(n) => lines.extend_from_slice(&format_line(&buf[..n], &self.hostname, now_unix())),
                Err(_) => break,
            }
        }
        if lines.is_empty() {
            return;
        }
        // The candidate may remove or replace the file: open it again when it is no longer the one at the path.
        let current = std::fs::symlink_metadata(LOG_FILE).ok();
        let stale = match (&self.out, &current) {
            (Some(f), Some(m)) => f.metadata().map(|fm| !same_file(&fm, m)).unwrap_or(true),
            _ => true,
        };
        if stale {
            self.out = open_log().ok();
        }
        if let Some(f) = &mut self.out {
            let _ = f.write_all(&lines);
        }
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// `/var/log/syslog`, appended to, never through a symbolic link; made 0640 as Debian's rsyslog makes it.
fn open_log() -> io::Result<File> {
    std::fs::create_dir_all("/var/log")?;
    OpenOptions::new().append(true).create(true).mode(0o640).custom_flags(libc::O_NOFOLLOW).open(LOG_FILE)
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// One datagram as a log line: `<PRI>` removed; an RFC 3164 timestamp kept (else the time it arrived, in UTC, the
/// environment's zone); the hostname added; control characters but tab shown as `#ooo` (as rsyslog does), so that a
/// message can never forge a second line.
pub fn format_line(msg: &[u8], hostname: &str, now: i64) -> Vec<u8> {
    let mut rest = msg;
    if let Some(stripped) = rest.strip_prefix(b"<") {
        if let Some(end) = stripped.iter().take(4).position(|&c| c == b'>') {
            if stripped[..end].iter().all(u8::is_ascii_digit) && end > 0 {
                rest = &stripped[end + 1..];
            }
        }
    }
    while rest.last().is_some_and(|&c| c == b'\n' || c == 0) {
        rest = &rest[..rest.len() - 1];
    }
    let (stamp, body) = if rest.len() >= 16 && looks_like_3164_time(&rest[..15]) && rest[15] == b' ' {
        (String::from_utf8_lossy(&rest[..15]).into_owned(), &rest[16..])
    } else {
        (syslog_time(now), rest)
    };
    let mut line = format!("{stamp} {hostname} ").into_bytes();
    for &c in body {
        if c < 0x20 && c != b'\t' || c == 0x7f {
            line.extend_from_slice(format!("#{c:03o}").as_bytes());
        } else {
            line.push(c);
        }
    }
    line.push(b'\n');
    line
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `Mmm dd hh:mm:ss` (the day space-padded).
fn looks_like_3164_time(t: &[u8]) -> bool {
    let digit = |i: usize| t[i].is_ascii_digit();
    t.len() == 15
        && MONTHS.iter().any(|m| t.starts_with(m.as_bytes()))
        && t[3] == b' '
        && (t[4] == b' ' || digit(4))
        && digit(5)
        && t[6] == b' '
        && digit(7)
        && digit(8)
        && t[9] == b':'
        && t[12] == b':'
}

/// A Unix time as `Mmm dd hh:mm:ss`, UTC.
fn syslog_time(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    format!("{} {:>2} {:02}:{:02}:{:02}", MONTHS[(month - 1) as usize], day, secs / 3600, secs % 3600 / 60, secs % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_a_syslog_daemons() {
        // 2026-12-02 08:30:05 UTC
        let now = 1_796_200_205;
        assert_eq!(syslog_time(now), "Dec  2 08:30:05");
        assert_eq!(syslog_time(0), "Jan  1 00:00:00");
        assert_eq!(
            format_line(b"<13>Dec  2 08:30:00 root: hello", "exam-1", now),
            b"Dec  2 08:30:00 exam-1 root: hello\n"
        );
        assert_eq!(format_line(b"<13>1 no timestamp here", "h", now), b"Dec  2 08:30:05 h 1 no timestamp here\n");
        assert_eq!(format_line(b"plain\n", "h", now), b"Dec  2 08:30:05 h plain\n");
    }

    #[test]
    fn a_message_cannot_forge_a_line() {
        let line = format_line(b"<13>Dec  2 08:30:00 x: a\nDec  2 08:30:01 h sudo: forged\x1b[2J", "h", 0);
        assert_eq!(line.iter().filter(|&&c| c == b'\n').count(), 1);
        assert!(String::from_utf8_lossy(&line).contains("a#012Dec"));
        assert!(String::from_utf8_lossy(&line).contains("#033[2J"));
    }

    #[test]
    fn odd_input_does_not_panic() {
        for m in [&b""[..], b"<", b"<>", b"<999999>", b"<1", b"<13>", b"<13>Dec", b"\xff\xfe", b"<13>Dec  2 08:30:00"] {
            let l = format_line(m, "h", 0);
            assert!(l.ends_with(b"\n"));
        }
    }
}
