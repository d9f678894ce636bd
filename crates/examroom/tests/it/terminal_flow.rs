//! Flow control of an attached terminal (shim protocol version 2), at the runtime's level: a client that does not
//! acknowledge gets exactly the window and the program writing is paused, not its output dropped; Ctrl-C still
//! reaches the shell; acknowledged output arrives whole and in order; a paused client that goes away releases the
//! terminal; the scrollback holds the output; a version 1 connection has no flow control.

use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::protocol::{self, client, Kind, Reply, Request, FLOW_WINDOW};
use examroom_runtime::sandbox::state;
use examroom_runtime::{ExecutionRuntime, Terminal, TerminalEvent};
use tokio::net::UnixStream;

use crate::common::{type_line, Harness};

const T: Duration = Duration::from_secs(30);

/// An attached terminal and the output it has read since the attach.
struct Reader {
    term: Terminal,
    out: Vec<u8>,
    /// Bytes after the marker acknowledged so far.
    acked: u64,
}

impl Reader {
    async fn attach(h: &Harness, id: &EnvironmentId) -> Reader {
        let mut r = Reader { term: h.rt.attach(id, "main").await.expect("attach"), out: Vec::new(), acked: 0 };
        type_line(&mut r.term, "PS1='$ '; echo probe-$((3*3))").await;
        r.until("probe-9", false, T).await;
        r
    }

    /// Output bytes after the shim's flow-control marker (0 until it has been read).
    fn after_marker(&self) -> u64 {
        self.term.output.flow_base().map_or(0, |base| self.out.len() as u64 - base)
    }

    /// Acknowledges everything read so far.
    async fn ack_all(&mut self) {
        let n = self.after_marker() - self.acked;
        self.term.input.ack(n).await.expect("ack");
        self.acked += n;
    }

    /// Reads one event (bounded), and acknowledges everything read when `ack`; false when nothing came in time.
    async fn read(&mut self, ack: bool, within: Duration) -> bool {
        match tokio::time::timeout(within, self.term.output.next()).await {
            Err(_) => false,
            Ok(Ok(Some(TerminalEvent::Output(b)))) => {
                self.out.extend_from_slice(&b);
                if ack {
                    self.ack_all().await;
                }
                true
            }
            Ok(Ok(Some(TerminalEvent::Notice(_)))) => true,
            Ok(other) => panic!("the terminal ended: {other:?}"),
        }
    }

    /// Reads (acknowledging when `ack`) until the output holds `needle`; returns where it ends.
    async fn until(&mut self, needle: &str, ack: bool, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut from = 0;
        loop {
            if let Some(at) = find(&self.out[from..], needle.as_bytes()) {
                return from + at + needle.len();
            }
            from = self.out.len().saturating_sub(needle.len());
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {needle:?} within {within:?}; tail {:?}", self.tail());
            self.read(ack, left).await;
        }
    }

    /// Reads without acknowledging until `n` bytes after the marker have come; then nothing more may come.
    async fn until_paused_at(&mut self, n: u64) {
        let deadline = Instant::now() + T;
        while self.after_marker() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} bytes after the marker within {T:?}",
                self.after_marker()
            );
            self.read(false, T).await;
        }
        assert_eq!(self.after_marker(), n, "the shim sent more than the window");
        let quiet = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < quiet {
            if self.read(false, quiet.saturating_duration_since(Instant::now())).await {
                panic!("output beyond the window without an ack: {} bytes after the marker", self.after_marker());
            }
        }
    }

    fn tail(&self) -> String {
        String::from_utf8_lossy(&self.out[self.out.len().saturating_sub(300)..]).into_owned()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The lines of `text` that are numbers, in order.
fn numbers(text: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(text).split(['\r', '\n']).filter_map(|l| l.trim().parse().ok()).collect()
}

/// Whether a process named `name` runs in the environment.
async fn running(h: &Harness, id: &EnvironmentId, name: &str) -> bool {
    let script =
        format!("for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = {name} ] && echo yes; done; true");
    h.sh_ok(id, &script).await.contains("yes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_is_paused_at_the_window_and_nothing_is_dropped() {
    let h = Harness::new();
    let id = h.create().await;
    let mut r = Reader::attach(&h, &id).await;
    assert!(r.term.input.flow_control(None).await.unwrap(), "this shim speaks flow control");

    // 1. Without acknowledgements the client gets exactly the window, and `seq` waits in the kernel.
    type_line(&mut r.term, "seq 1 200000; echo SEQ-$((100+1))").await;
    r.until_paused_at(FLOW_WINDOW).await;
    assert!(running(&h, &id, "seq").await, "seq is paused, not finished or killed");

    // 2. Acknowledging as it reads, the client gets every number, once, in order.
    let from = r.out.len().saturating_sub(FLOW_WINDOW as usize);
    r.ack_all().await;
    r.until("SEQ-101", true, Duration::from_secs(120)).await;
    let got = numbers(&r.out[from..]);
    let first = got.iter().position(|&n| n == 1).expect("the first number");
    let seq = &got[first..];
    assert_eq!(seq.len(), 200_000, "every number arrived once (last ones {:?})", &seq[seq.len().saturating_sub(3)..]);
    assert!(seq.iter().enumerate().all(|(i, &n)| n == i as u64 + 1), "the numbers arrived in order");

    // 3. A paused client that goes away releases the terminal: the output goes on into the scrollback, and the next
    //    attach replays its end.
    type_line(&mut r.term, "seq 1 300000; echo SEQ-$((200+2))").await;
    r.until_paused_at(r.acked + FLOW_WINDOW).await;
    assert!(running(&h, &id, "seq").await, "seq is paused again");
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(60);
    while running(&h, &id, "seq").await {
        assert!(Instant::now() < deadline, "seq did not finish within 60 s of its client going away");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut again = Reader { term: h.rt.attach(&id, "main").await.unwrap(), out: Vec::new(), acked: 0 };
    again.until("SEQ-202", false, T).await;
    let n = numbers(&again.out);
    assert_eq!(n.last(), Some(&300_000), "the replay ends with the last number");
    let tail = &n[n.len() - 1000..];
    assert!(tail.iter().enumerate().all(|(i, &k)| k == 299_001 + i as u64), "the scrollback has no gap");
    drop(again);
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_reaches_a_paused_flood_and_little_is_queued_before_the_prompt() {
    let h = Harness::new();
    let id = h.create().await;
    let mut r = Reader::attach(&h, &id).await;
    // A client may choose a smaller window than the default (the page does, so that its renderer never has much
    // to catch up on).
    assert!(r.term.input.flow_control(Some(64 * 1024)).await.unwrap());
    type_line(&mut r.term, "yes").await;
    r.until_paused_at(64 * 1024).await;

    // Input flows while output is paused: Ctrl-C stops `yes`. The client has the window already (a browser renders
    // it, then acknowledges it); after that only what the kernel held comes before the shell's answer.
    let at = r.out.len();
    r.term.input.write(b"\x03").await.unwrap();
    type_line(&mut r.term, "echo after-$((2+2))").await;
    r.ack_all().await;
    let end = r.until("after-4", true, T).await;
    let between = end - at;
    assert!(between <= 64 * 1024, "{between} bytes came between Ctrl-C and the answer: {:?}", r.tail());
    assert!(!running(&h, &id, "yes").await, "Ctrl-C stopped yes");
    drop(r);
    h.teardown().await;
}

async fn raw(h: &Harness, id: &EnvironmentId, max: u32) -> (UnixStream, u32) {
    let sock = h.state_dir.join(&h.label).join(id.to_string()).join(state::SOCKET);
    let mut s = UnixStream::connect(sock).await.unwrap();
    client::write_request(&mut s, &Request::Hello { min: 1, max }).await.unwrap();
    match raw_reply(&mut s).await {
        Some(Reply::Hello { version, .. }) => (s, version),
        other => panic!("hello: {other:?}"),
    }
}

/// The next control reply (data frames are skipped).
async fn raw_reply(s: &mut UnixStream) -> Option<Reply> {
    loop {
        let f = tokio::time::timeout(T, client::read_frame(s)).await.expect("a frame in time").ok()??;
        if f.kind == Kind::Control {
            return Some(serde_json::from_slice(&f.payload).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_is_version_2_and_for_the_controlling_client_only() {
    let h = Harness::new();
    let id = h.create().await;

    // An old client: version 1 attaches as before, and flow control is refused.
    let (mut s, v) = raw(&h, &id, 1).await;
    assert_eq!(v, 1);
    client::write_request(&mut s, &Request::Attach { terminal: "main".into(), replay: false }).await.unwrap();
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Attached { .. })));
    client::write_request(&mut s, &Request::FlowControl { window: None }).await.unwrap();
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Error { code, .. }) if code == "bad_request"));

    // Version 2: one marker however often it is asked, with the window clamped; an ack before it is ignored.
    let (mut s, v) = raw(&h, &id, protocol::VERSION_MAX).await;
    assert_eq!(v, protocol::VERSION_MAX);
    assert!(v >= protocol::VERSION_FLOW);
    client::write_request(&mut s, &Request::Attach { terminal: "main".into(), replay: false }).await.unwrap();
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Attached { .. })));
    client::write_request(&mut s, &Request::Ack { bytes: 1 << 40 }).await.unwrap();
    client::write_request(&mut s, &Request::FlowControl { window: Some(1) }).await.unwrap();
    client::write_request(&mut s, &Request::FlowControl { window: None }).await.unwrap();
    client::write_request(&mut s, &Request::Resize { terminal: "main".into(), cols: 100, rows: 30 }).await.unwrap();
    let min = protocol::FLOW_WINDOW_MIN;
    assert!(matches!(
        raw_reply(&mut s).await,
        Some(Reply::FlowControl { high, low }) if high == min && low == min / 2
    ));
    // A newer attach takes the terminal over; the old connection is told so.
    let (mut s2, _) = raw(&h, &id, protocol::VERSION_MAX).await;
    client::write_request(&mut s2, &Request::Attach { terminal: "main".into(), replay: false }).await.unwrap();
    assert!(matches!(raw_reply(&mut s2).await, Some(Reply::Attached { .. })));
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Replaced)), "the second marker was never sent");
    // The environment still serves.
    assert_eq!(h.sh_ok(&id, "echo serving").await, "serving\n");
    drop((s, s2));
    h.teardown().await;
}
