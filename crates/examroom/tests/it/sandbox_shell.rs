//! `examroom sandbox shell`, the real binary in a real terminal: tmux (from install-deps.sh) gives it a pseudo-terminal
//! that can be typed into, read back, resized and asked for its modes. Each pane runs a wrapper that records the
//! terminal's settings (`stty -g`) before and after the command, and the command's exit status.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use examroom_runtime::ExecutionRuntime;

use crate::common::*;

const T: Duration = Duration::from_secs(15);

/// A tmux server of its own (its socket in a temporary directory) with one pane running `sandbox shell`.
struct Pane {
    dir: tempfile::TempDir,
}

impl Pane {
    /// Starts `examroom sandbox shell` on the harness's state directory and label, in a 100x30 terminal.
    fn start(h: &Harness, args: &[&str]) -> Pane {
        let dir = tempfile::Builder::new().prefix("er-tmux-").tempdir_in("/tmp").expect("tempdir");
        let d = dir.path().display().to_string();
        let mut cmd = format!(
            "{} sandbox shell --state-dir {} --label {}",
            shim_program().display(),
            h.state_dir.display(),
            h.label
        );
        for a in args {
            cmd.push(' ');
            cmd.push_str(a);
        }
        let script = format!(
            "stty -g > {d}/before\n{cmd}\necho $? > {d}/rc.part\nstty -g > {d}/after\nmv {d}/rc.part {d}/rc\nexec sleep 600\n"
        );
        std::fs::write(dir.path().join("run.sh"), script).expect("write the wrapper");
        let pane = Pane { dir };
        pane.tmux(&["-f", "/dev/null", "new-session", "-d", "-x", "100", "-y", "30", &format!("bash {d}/run.sh")]);
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("tmux.sock"))
            .args(args)
            .output()
            .expect("run tmux (scripts/install-deps.sh installs it)");
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys by tmux's names (`Enter`, `C-]`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Text, typed as it is.
    fn text(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
    }

    /// A command line, then Enter.
    fn line(&self, text: &str) {
        self.text(text);
        self.keys(&["Enter"]);
    }

    /// The screen and its history, wrapped lines joined.
    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-1000"])
    }

    fn format(&self, f: &str) -> String {
        self.tmux(&["display-message", "-p", f]).trim().to_string()
    }

    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + T;
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            assert!(Instant::now() < deadline, "no {needle:?} within {T:?}; the screen:\n{s}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Types `line` until the screen shows `needle` (for what follows an asynchronous event, such as a resize).
    fn retry_until(&self, line: &str, needle: &str) {
        let deadline = Instant::now() + T;
        loop {
            self.line(line);
            let until = Instant::now() + Duration::from_secs(1);
            while Instant::now() < until {
                if self.screen().contains(needle) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(Instant::now() < deadline, "no {needle:?} within {T:?}; the screen:\n{}", self.screen());
        }
    }

    /// Waits until the environment's shell answers.
    fn ready(&self) {
        self.wait_for("Enter ~ .");
        self.retry_until("echo ready-$((40+2))", "ready-42");
    }

    /// Leaves with Enter ~ . (the escape counts only right after Enter).
    fn leave(&self) {
        self.keys(&["Enter"]);
        self.text("~.");
    }

    /// The command's exit status, once it has ended.
    fn exit_status(&self) -> i32 {
        let rc = self.dir.path().join("rc");
        let deadline = Instant::now() + T;
        while !rc.exists() {
            assert!(Instant::now() < deadline, "the command did not end within {T:?}; the screen:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(50));
        }
        std::fs::read_to_string(rc).expect("rc").trim().parse().expect("a status")
    }

    /// The terminal's settings before and after the command.
    fn settings(&self) -> (String, String) {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).expect("stty -g output");
        (read("before"), read("after"))
    }

    /// The `examroom` process of the pane (the wrapper's child).
    fn examroom_pid(&self) -> i32 {
        let shell: i32 = self.format("#{pane_pid}").parse().expect("pane pid");
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).expect("children");
        children.split_whitespace().next().expect("the command runs").parse().expect("pid")
    }

    /// Modes of the pane's terminal that programs switch on and must not be left on.
    fn modes(&self) -> String {
        self.format(
            "alt=#{alternate_on} cursor=#{cursor_flag} keys=#{keypad_cursor_flag} keypad=#{keypad_flag} \
             mouse=#{mouse_any_flag} insert=#{insert_flag}",
        )
    }

    fn wait_for_modes(&self, needle: &str) {
        let deadline = Instant::now() + T;
        while !self.modes().contains(needle) {
            assert!(Instant::now() < deadline, "no {needle} within {T:?}: {}", self.modes());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const CLEAN_MODES: &str = "alt=0 cursor=1 keys=0 keypad=0 mouse=0 insert=0";

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(self.dir.path().join("tmux.sock"))
            .arg("kill-server")
            .stderr(Stdio::null())
            .status();
    }
}

/// `examroom sandbox list` for the harness's label.
fn cli_list(state_dir: &Path, label: &str) -> String {
    let out = Command::new(shim_program())
        .args(["sandbox", "list", "--state-dir"])
        .arg(state_dir)
        .args(["--label", label])
        .output()
        .expect("run sandbox list");
    assert!(out.status.success(), "sandbox list: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that the command left the terminal as it found it and no environment behind.
async fn assert_left_clean(h: &Harness, pane: &Pane) {
    let (before, after) = pane.settings();
    assert_eq!(before, after, "stty -g before and after the command");
    assert_eq!(pane.modes(), CLEAN_MODES, "the terminal's modes after the command");
    assert_eq!(cli_list(&h.state_dir, &h.label), "", "no environment is left");
    assert!(h.rt.list().await.unwrap().is_empty());
    // A shim whose creator (an earlier `sandbox shell --keep`) has exited is reaped by init, in its own time.
    assert_no_leaks(&h.label, &h.state_dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_follows_resizes_passes_editor_keys_and_leaves_clean() {
    let h = Harness::new();
    let pane = Pane::start(&h, &[]);
    pane.ready();

    // The host terminal's size at the start, and after a resize.
    pane.retry_until("echo size-$(stty size)", "size-30 100");
    pane.tmux(&["resize-window", "-x", "120", "-y", "40"]);
    pane.retry_until("echo size-$(stty size)", "size-40 120");

    // Ctrl-] and a `~.` inside a line reach the environment; `~~` at the start of a line is one `~`.
    // (Typed once `read` waits in the cooked terminal: keys typed ahead, while bash's line editor still has the
    // terminal, would come without their newline.)
    pane.line(
        "echo reading-$((2+3)); read -r x; printf %s \"$x\" | od -An -tx1 | tr -d ' \\n' | sed 's/^/hex-/'; echo",
    );
    pane.wait_for("reading-5");
    pane.text("~~");
    pane.keys(&["C-]"]);
    pane.text("~.a");
    pane.keys(&["Enter"]);
    pane.wait_for("hex-7e1d7e2e61");

    // Ctrl-] in vim (jump to a tag) is vim's: it complains about tags, the environment stays.
    pane.line("vim -u NONE -N /tmp/note");
    pane.wait_for_modes("alt=1");
    pane.text("iwritten in vim");
    pane.keys(&["Escape", "C-]"]);
    pane.wait_for("E4"); // E426/E433: no tag, no tags file.
    pane.text(":wq");
    pane.keys(&["Enter"]);
    pane.retry_until("echo note-$(cat /tmp/note)", "note-written in vim");

    // Leaving while a full-screen program runs: vim switched on the alternate screen and application keys, and is
    // killed with its environment; the host terminal gets its modes and settings back all the same.
    pane.line("vim -u NONE -N /tmp/other");
    pane.wait_for_modes("alt=1");
    pane.leave();
    assert_eq!(pane.exit_status(), 0, "{}", pane.screen());
    let screen = pane.screen();
    assert!(screen.contains("destroyed "), "{screen}");
    assert_left_clean(&h, &pane).await;
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_restores_the_terminal_and_destroys_the_environment_on_signals_and_hangup() {
    let h = Harness::new();
    for sig in [libc::SIGTERM, libc::SIGHUP, libc::SIGINT] {
        let pane = Pane::start(&h, &[]);
        pane.ready();
        // A program inside switches on what a full-screen program does, and never switches it off.
        pane.line(
            "printf '\\033[?1049h\\033[?1h\\033=\\033[?2004h\\033[?1000h\\033[?25l\\033[4h'; echo modes-$((1+1))",
        );
        pane.wait_for("modes-2");
        assert_ne!(pane.modes(), CLEAN_MODES);
        // SAFETY: signalling the pane's examroom process.
        assert_eq!(unsafe { libc::kill(pane.examroom_pid(), sig) }, 0);
        assert_eq!(pane.exit_status(), 128 + sig, "{}", pane.screen());
        assert_left_clean(&h, &pane).await;
    }
    // The terminal itself goes away (the window is closed): the environment goes with it, although there is nowhere
    // left to write to.
    let pane = Pane::start(&h, &[]);
    pane.ready();
    assert_eq!(h.rt.list().await.unwrap().len(), 1);
    pane.tmux(&["kill-server"]);
    let deadline = Instant::now() + T;
    while !h.rt.list().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the environment outlived its terminal");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_no_leaks(&h.label, &h.state_dir).await;
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_keep_detaches_and_attach_returns_to_the_environment() {
    let h = Harness::new();
    let first = Pane::start(&h, &["--keep"]);
    first.ready();
    first.line("echo $((6*7))-kept > /tmp/mark");
    first.leave();
    assert_eq!(first.exit_status(), 0, "{}", first.screen());
    let screen = first.screen();
    assert!(screen.contains("keeps running"), "{screen}");
    let listed = h.rt.list().await.unwrap();
    assert_eq!(listed.len(), 1, "the environment is kept");
    let id = listed[0].id.to_string();
    assert!(screen.contains(&format!("--attach {id}")), "it says how to re-attach: {screen}");
    assert!(cli_list(&h.state_dir, &h.label).contains(&id));
    let (before, after) = first.settings();
    assert_eq!(before, after);

    // Back in, with --keep again; then a newer attach takes over, and the older one lets go without destroying.
    let second = Pane::start(&h, &["--keep", "--attach", &id]);
    second.ready();
    second.retry_until("echo got-$(cat /tmp/mark)", "got-42-kept");
    let third = Pane::start(&h, &["--attach", &id]);
    third.ready();
    assert_eq!(second.exit_status(), 0, "{}", second.screen());
    second.wait_for("another client attached");
    assert_eq!(h.rt.list().await.unwrap().len(), 1, "a takeover destroys nothing");

    // Without --keep, leaving destroys it.
    third.leave();
    assert_eq!(third.exit_status(), 0, "{}", third.screen());
    assert_left_clean(&h, &third).await;
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_refuses_without_a_terminal_and_names_a_missing_environment() {
    let h = Harness::new();
    let out = Command::new(shim_program())
        .args(["sandbox", "shell", "--state-dir"])
        .arg(&h.state_dir)
        .args(["--label", &h.label])
        .stdin(Stdio::null())
        .output()
        .expect("run sandbox shell");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("standard input is not a terminal"), "{err}");
    assert!(h.rt.list().await.unwrap().is_empty(), "nothing was created");

    let missing = examroom_core::EnvironmentId::new_v4().to_string();
    let pane = Pane::start(&h, &["--attach", &missing]);
    assert_eq!(pane.exit_status(), 1);
    pane.wait_for(&format!("no environment {missing} under label {}", h.label));
    let (before, after) = pane.settings();
    assert_eq!(before, after);
    h.teardown().await;
}
