//! The JSON control messages of the shim protocol.

use serde::{Deserialize, Serialize};

/// What a client asks of a shim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Opens every connection: the versions the client speaks.
    Hello {
        /// Lowest version spoken.
        min: u32,
        /// Highest version spoken.
        max: u32,
    },
    /// The environment's status.
    Status,
    /// Opens another terminal (a new PTY with a fresh shell).
    OpenTerminal {
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// Turns this connection into a terminal stream. A newer attach to the same terminal replaces this one.
    Attach {
        /// Which terminal ("main" is the one made at create).
        terminal: String,
        /// Replay the scrollback first.
        replay: bool,
    },
    /// Sets a terminal's size (also accepted on an attached stream).
    Resize {
        /// Which terminal.
        terminal: String,
        /// Columns.
        cols: u16,
        /// Rows.
        rows: u16,
    },
    /// On an attached stream (version 2): turns on flow control for this connection. Sent once; the shim answers
    /// with [`Reply::FlowControl`] in the stream, and counts the output it sends after that marker.
    FlowControl {
        /// Unacknowledged bytes at which the shim stops reading (default `FLOW_WINDOW`, clamped to
        /// `FLOW_WINDOW_MIN..=FLOW_WINDOW_MAX`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<u64>,
    },
    /// On an attached stream with flow control (version 2): the client consumed this many more bytes of output.
    Ack {
        /// Bytes since the previous ack.
        bytes: u64,
    },
    /// Runs a command inside the environment. Stdin follows as `Data` frames ended by an empty one.
    Exec(ExecSpec),
    /// Runs a command with a trusted view of the environment (for grading): the pristine base's tools over the
    /// candidate's files, read-only. Same conversation as `Exec`.
    TrustedExec(ExecSpec),
    /// Freezes every process of the environment (its terminals and execs stop); only trusted commands run after it.
    Freeze,
    /// Version 3: opens a TCP connection to `port` on the environment's own loopback, from inside its network
    /// namespace. Answered [`Reply::Dialed`] (the connection then relays bytes: `Data` frames both ways, an empty
    /// one for end of stream) or [`Reply::Error`] (`connection_refused`, `dial_failed`).
    Dial {
        /// The port on the environment's 127.0.0.1.
        port: u16,
    },
    /// Version 3: starts the environment's desktop (an X server with a VNC server on its loopback, a window manager
    /// and a terminal emulator), or reports the one already running. Answered [`Reply::Desktop`].
    StartDesktop(DesktopSpec),
    /// Kills everything in the environment; the shim answers `Destroyed` and exits.
    Destroy,
}

/// What desktop to start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopSpec {
    /// Width of the screen in pixels.
    pub width: u16,
    /// Height of the screen in pixels.
    pub height: u16,
    /// The VNC server's port on the environment's loopback.
    pub port: u16,
}

/// A desktop as its shim sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesktopStatus {
    /// `running`, or `exited` when its X server ended.
    pub state: String,
    /// The VNC server's port on the environment's loopback.
    pub port: u16,
    /// Times the X server was started again after it ended.
    pub restarts: u32,
    /// Why it is not running: how the X server ended, and the end of what it printed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A command to run inside the environment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Program and arguments; the program is looked up in `PATH` of `env`.
    pub argv: Vec<String>,
    /// The whole environment of the command (nothing is inherited).
    pub env: Vec<(String, String)>,
    /// Working directory inside the environment.
    pub cwd: String,
    /// Killed after this many milliseconds.
    pub timeout_ms: u64,
    /// Output beyond this many bytes per stream is dropped and reported as truncated.
    pub output_limit: u64,
}

/// A shim's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    /// The version chosen for this connection.
    Hello {
        /// The negotiated version.
        version: u32,
        /// The shim's build.
        shim: String,
    },
    /// The environment's status.
    Status(ShimStatus),
    /// A terminal was opened.
    Opened {
        /// Its name.
        terminal: String,
    },
    /// Attached; `replay_bytes` of scrollback follow as `Data`, then live output.
    Attached {
        /// The terminal.
        terminal: String,
        /// Bytes of scrollback that follow.
        replay_bytes: u64,
    },
    /// Flow control is on: the output after this marker counts against the window (version 2).
    FlowControl {
        /// The shim stops reading the terminal at this many unacknowledged bytes.
        high: u64,
        /// ... and reads it again at this many.
        low: u64,
    },
    /// Something the person at the terminal should know, e.g. that a new shell was started.
    Notice {
        /// For a person.
        message: String,
    },
    /// A newer attach took this terminal over; the shim closes this connection.
    Replaced,
    /// The environment is being destroyed; the shim closes this connection.
    Ended,
    /// A request succeeded and has nothing to say.
    Ok,
    /// Version 3: the connection asked for by [`Request::Dial`] is open; from here on it relays bytes.
    Dialed {
        /// The port.
        port: u16,
    },
    /// Version 3: the desktop (started, or found running).
    Desktop(DesktopStatus),
    /// An exec finished.
    ExecDone(ExecStatus),
    /// Everything inside was killed; the shim exits next.
    Destroyed {
        /// Processes that were still in the environment's cgroup when destroy began.
        killed: u32,
    },
    /// A request failed.
    Error {
        /// snake_case code.
        code: String,
        /// For a person.
        message: String,
    },
}

/// How an exec ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStatus {
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Signal, when a signal ended it.
    pub signal: Option<i32>,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
    /// Output was cut at the limit.
    pub truncated: bool,
    /// Wall time, from spawn to exit.
    pub duration_ms: u64,
}

/// The state of one environment, as its shim sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimStatus {
    /// The environment id.
    pub id: String,
    /// `running`, or `lost` when init died.
    pub state: String,
    /// Why it was lost.
    pub lost_reason: Option<String>,
    /// The shim's pid on the host.
    pub shim_pid: i32,
    /// Init's pid on the host.
    pub init_pid: i32,
    /// Terminals and their shells.
    pub terminals: Vec<TerminalStatus>,
    /// Processes in the environment's cgroup.
    pub processes: u32,
    /// OOM kills seen in the environment's cgroup.
    pub oom_kills: u64,
    /// Unix milliseconds of creation.
    pub created_unix_ms: u64,
    /// The desktop, once started (version 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desktop: Option<DesktopStatus>,
}

/// One terminal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalStatus {
    /// Its name.
    pub name: String,
    /// Columns.
    pub cols: u16,
    /// Rows.
    pub rows: u16,
    /// Whether a client is attached.
    pub attached: bool,
    /// Shells started after the first one exited.
    pub shell_restarts: u32,
    /// Bytes in the scrollback ring.
    pub scrollback_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_wire_form() {
        let j = serde_json::to_string(&Request::Attach { terminal: "main".into(), replay: true }).unwrap();
        assert_eq!(j, r#"{"op":"attach","terminal":"main","replay":true}"#);
        let r: Reply = serde_json::from_str(r#"{"op":"hello","version":1,"shim":"x"}"#).unwrap();
        assert_eq!(r, Reply::Hello { version: 1, shim: "x".into() });
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
        // Version 2: flow control on attached streams.
        let j = serde_json::to_string(&Request::FlowControl { window: None }).unwrap();
        assert_eq!(j, r#"{"op":"flow_control"}"#);
        let j = serde_json::to_string(&Request::FlowControl { window: Some(131072) }).unwrap();
        assert_eq!(j, r#"{"op":"flow_control","window":131072}"#);
        let r: Request = serde_json::from_str(r#"{"op":"flow_control"}"#).unwrap();
        assert_eq!(r, Request::FlowControl { window: None });
        assert_eq!(serde_json::to_string(&Request::Ack { bytes: 65536 }).unwrap(), r#"{"op":"ack","bytes":65536}"#);
        let r: Reply = serde_json::from_str(r#"{"op":"flow_control","high":262144,"low":131072}"#).unwrap();
        assert_eq!(r, Reply::FlowControl { high: 262144, low: 131072 });
        // The version 1 attach is unchanged, so an old shim still understands a new server.
        let old: Request = serde_json::from_str(r#"{"op":"attach","terminal":"main","replay":false}"#).unwrap();
        assert_eq!(old, Request::Attach { terminal: "main".into(), replay: false });
        assert!(serde_json::from_str::<Request>(r#"{"op":"ack","bytes":-1}"#).is_err());
        // Version 3: dial and the desktop.
        assert_eq!(serde_json::to_string(&Request::Dial { port: 5900 }).unwrap(), r#"{"op":"dial","port":5900}"#);
        assert!(serde_json::from_str::<Request>(r#"{"op":"dial","port":70000}"#).is_err());
        let d = Request::StartDesktop(DesktopSpec { width: 1280, height: 800, port: 5900 });
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"op":"start_desktop","width":1280,"height":800,"port":5900}"#
        );
        let r: Reply = serde_json::from_str(r#"{"op":"dialed","port":8000}"#).unwrap();
        assert_eq!(r, Reply::Dialed { port: 8000 });
        // A status from a shim of version 2 has no desktop, and still reads.
        let old = r#"{"op":"status","id":"e","state":"running","lost_reason":null,"shim_pid":1,"init_pid":2,
            "terminals":[],"processes":1,"oom_kills":0,"created_unix_ms":5}"#;
        assert!(matches!(serde_json::from_str::<Reply>(old).unwrap(), Reply::Status(ShimStatus { desktop: None, .. })));
    }
}
