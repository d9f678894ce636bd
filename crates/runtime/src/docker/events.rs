//! [`Losses`]: environments whose candidate container died, from the Engine's event stream (`type=container`, this
//! run's label, role `candidate`, events `die`, `oom` and `destroy`). The stream is followed by one task, started
//! with the first subscriber; when dockerd goes away it reconnects with a backoff (0.5 s doubling to 10 s) and asks
//! for the events since the last one it saw, so a container that died while dockerd restarted is still reported.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::query_parameters::EventsOptions;
use examroom_core::EnvironmentId;
use futures::StreamExt;
use tokio::sync::broadcast;

use super::{connect_engine, LABEL_ENVIRONMENT, LABEL_ROLE, LABEL_RUN};

/// Notices of lost environments, to every subscriber.
pub(super) struct Losses {
    tx: broadcast::Sender<EnvironmentId>,
    socket: PathBuf,
    label: String,
    /// Environments being destroyed on purpose: their container's end is no loss.
    forgotten: Mutex<HashSet<EnvironmentId>>,
    started: Mutex<bool>,
    /// Dropped with this: the following task ends at once (not at the next event).
    stop: tokio::sync::watch::Sender<()>,
}

impl Losses {
    pub(super) fn new(socket: PathBuf, label: String) -> Arc<Losses> {
        let (tx, _) = broadcast::channel(1024);
        let (stop, _) = tokio::sync::watch::channel(());
        Arc::new(Losses { tx, socket, label, forgotten: Mutex::new(HashSet::new()), started: Mutex::new(false), stop })
    }

    /// A receiver of notices; starts following the Engine's events (once, when a tokio runtime is there).
    pub(super) fn subscribe(self: &Arc<Self>) -> broadcast::Receiver<EnvironmentId> {
        let rx = self.tx.subscribe();
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        if !*started && tokio::runtime::Handle::try_current().is_ok() {
            *started = true;
            let me = Arc::downgrade(self);
            tokio::spawn(follow(me, self.stop.subscribe()));
        }
        rx
    }

    /// The environment is being destroyed on purpose: no notice for it.
    pub(super) fn forget(&self, id: EnvironmentId) {
        self.forgotten.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
    }

    fn notice(&self, id: EnvironmentId, action: &str) {
        let mut forgotten = self.forgotten.lock().unwrap_or_else(|p| p.into_inner());
        if forgotten.contains(&id) {
            // The last event of a container: the environment id is free again.
            if action == "destroy" {
                forgotten.remove(&id);
            }
            return;
        }
        let _ = self.tx.send(id);
    }
}

/// Follows the Engine's events until the [`Losses`] is dropped.
async fn follow(me: std::sync::Weak<Losses>, mut stop: tokio::sync::watch::Receiver<()>) {
    let mut backoff = Duration::from_millis(500);
    let mut since: Option<i64> = None;
    loop {
        let Some(losses) = me.upgrade() else { return };
        let (socket, label) = (losses.socket.clone(), losses.label.clone());
        drop(losses);
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["die".to_string(), "oom".to_string(), "destroy".to_string()]),
            ("label".to_string(), vec![format!("{LABEL_RUN}={label}"), format!("{LABEL_ROLE}=candidate")]),
        ]);
        if let Ok(docker) = connect_engine(&socket, Duration::from_secs(3600)) {
            // The stream's first answer says the Engine is there: the backoff starts again.
            let options = EventsOptions { since: since.map(|s| s.to_string()), until: None, filters: Some(filters) };
            let mut events = docker.events(Some(options));
            loop {
                let ev = tokio::select! {
                    ev = events.next() => ev,
                    _ = stop.changed() => return,
                };
                let Some(Ok(ev)) = ev else { break };
                backoff = Duration::from_millis(500);
                if let Some(t) = ev.time {
                    since = Some(t);
                }
                let Some(losses) = me.upgrade() else { return };
                let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
                if let Some(id) = attrs.get(LABEL_ENVIRONMENT).and_then(|v| v.parse::<EnvironmentId>().ok()) {
                    losses.notice(id, ev.action.as_deref().unwrap_or(""));
                }
            }
        }
        if me.strong_count() == 0 {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    /// A stand-in for the Engine's `/events` on a unix socket: answers one request with `events` (JSON lines, chunked)
    /// and hangs up after `hold`. Returns the request line.
    fn serve_once(listener: &UnixListener, events: &[String], hold: Duration) -> String {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut request = String::new();
        reader.read_line(&mut request).unwrap();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
        }
        let mut out =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for e in events {
            let body = format!("{e}\n");
            out.extend_from_slice(format!("{:x}\r\n{body}\r\n", body.len()).as_bytes());
        }
        conn.write_all(&out).unwrap();
        std::thread::sleep(hold);
        request
    }

    fn event(id: &EnvironmentId, action: &str, time: i64) -> String {
        serde_json::json!({
            "Type": "container", "Action": action, "time": time, "timeNano": time * 1_000_000_000,
            "Actor": { "ID": "c", "Attributes": { LABEL_ENVIRONMENT: id.to_string(), LABEL_RUN: "t" } }
        })
        .to_string()
    }

    /// The Engine goes away (its socket too) and comes back: the stream is followed again from the last event's time,
    /// and an environment destroyed on purpose gets no notice.
    #[tokio::test(flavor = "multi_thread")]
    async fn losses_follow_the_engine_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        let (first, forgotten, second) = (EnvironmentId::new_v4(), EnvironmentId::new_v4(), EnvironmentId::new_v4());
        let listener = UnixListener::bind(&sock).unwrap();
        let path = sock.clone();
        let (e1, e2, e3) = (event(&first, "die", 100), event(&forgotten, "die", 101), event(&second, "oom", 102));
        let engine = std::thread::spawn(move || {
            let r1 = serve_once(&listener, &[e1], Duration::from_millis(200));
            // dockerd stops: its socket goes, and comes back a moment later.
            drop(listener);
            std::fs::remove_file(&path).unwrap();
            std::thread::sleep(Duration::from_millis(700));
            let listener = UnixListener::bind(&path).unwrap();
            let r2 = serve_once(&listener, &[e2, e3], Duration::from_secs(3));
            (r1, r2)
        });
        let losses = Losses::new(sock, "t".into());
        let mut rx = losses.subscribe();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("first notice").unwrap();
        assert_eq!(got, first);
        losses.forget(forgotten);
        let got =
            tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("notice after restart").unwrap();
        assert_eq!(got, second, "the forgotten environment got a notice, or the second was lost");
        drop(losses);
        let (r1, r2) = engine.join().unwrap();
        assert!(r1.starts_with("GET /") && r1.contains("/events?") && r1.contains("examroom.role%3Dcandidate"), "{r1}");
        assert!(r2.contains("since=100"), "the stream was not resumed from the last event: {r2}");
    }
}
